// A stub OpenAI-compatible embeddings server (node:http on a free port) for the http provider's
// tests. By default it answers with the local lexical vectors (scaled, in reverse order, so the
// client must normalise and honour `index`); tests queue other replies to script failures.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { lexicalEmbedding } from '../../src/features/templates/embeddings/local.js'

export interface StubReply {
  status?: number
  headers?: Record<string, string>
  /** Sent as JSON; `raw` wins when both are set. */
  body?: unknown
  raw?: string
  /** Never answer (the client must give up through its signal). */
  hang?: boolean
}

export interface StubRequest {
  path: string
  authorization?: string
  body: { model?: string; input?: string[] }
  at: number
}

export interface EmbeddingsStub {
  url: string
  requests: StubRequest[]
  /** Replies for the next requests, in order; the default answer once it is empty. */
  queue: StubReply[]
  /** Consulted before the queue: a reply for requests whose input matches. */
  when?: (input: string[]) => StubReply | undefined
}

export async function startEmbeddingsStub(t: Test): Promise<EmbeddingsStub> {
  const stub: EmbeddingsStub = { url: '', requests: [], queue: [] }
  const server = http.createServer((req, res) => {
    let text = ''
    req.on('data', (chunk) => {
      text += chunk
    })
    req.on('end', () => {
      const body = JSON.parse(text || '{}') as StubRequest['body']
      stub.requests.push({
        path: req.url ?? '',
        authorization: req.headers.authorization,
        body,
        at: Date.now(),
      })
      const input = body.input ?? []
      const reply =
        req.url !== '/v1/embeddings'
          ? { status: 404, body: { error: 'not found' } }
          : (stub.when?.(input) ?? stub.queue.shift() ?? defaultReply(body.model ?? '', input))
      if (reply.hang) return
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers })
      res.end(reply.raw ?? JSON.stringify(reply.body ?? {}))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return stub
}

function defaultReply(model: string, input: string[]): StubReply {
  const data = input.map((text, index) => ({
    object: 'embedding',
    index,
    embedding: lexicalEmbedding(text).map((x) => x * 3),
  }))
  return { body: { object: 'list', model, data: data.reverse(), usage: { prompt_tokens: 0 } } }
}
