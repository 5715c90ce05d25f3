// A real HTTP server on a free port that records what is POSTed to it, for alert tests. It can
// fail the first N requests (HTTP 500) or hold requests unanswered.
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Received {
  headers: http.IncomingHttpHeaders
  body: Record<string, unknown>
  /** The status this receiver answered (0 while held). */
  status: number
}

export interface ReceiverOptions {
  /** Answer 500 to this many requests first. */
  failFirst?: number
  /** Never answer (until closed). */
  hold?: boolean
}

export interface WebhookReceiver {
  url: string
  /** Every request, failed ones included, in arrival order. */
  requests: Received[]
  /** Requests answered 2xx. */
  delivered(): Received[]
  close(): Promise<void>
}

export async function startReceiver(options: ReceiverOptions = {}): Promise<WebhookReceiver> {
  const requests: Received[] = []
  let failures = options.failFirst ?? 0
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const received: Received = {
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
        status: 0,
      }
      requests.push(received)
      if (options.hold) return
      received.status = failures > 0 ? 500 : 200
      if (failures > 0) failures--
      res
        .writeHead(received.status, { 'content-type': 'text/plain' })
        .end(received.status === 200 ? 'ok' : 'no')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    delivered: () => requests.filter((r) => r.status >= 200 && r.status < 300),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
