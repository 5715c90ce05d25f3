import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { EmbeddingError } from '../src/features/templates/embeddings/embedder.js'
import {
  createHttpEmbedder,
  embeddingsEndpoint,
  retryDelay,
} from '../src/features/templates/embeddings/http.js'
import { LOCAL_DIMENSIONS, lexicalEmbedding } from '../src/features/templates/embeddings/local.js'
import { buildTestApp, eventually } from './helper.js'
import { startEmbeddingsStub } from './support/embeddings-stub.js'

const dot = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0)
const never = new AbortController().signal

/** Triggers a job through the API and waits for it to end; returns the finished run. */
async function runJob(app: FastifyInstance, job: string, args: object = {}) {
  const res = await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })
  if (res.statusCode !== 202) throw new Error(`trigger ${job}: ${res.statusCode} ${res.body}`)
  const id = res.json().id
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json()
      return ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined
    },
    10_000,
    `${job} run ${id} to end`,
  )
}

t.test('the local embedding is lexical, deterministic and unit length', async (t) => {
  const a = lexicalEmbedding('Rotate the database backups every night')
  t.equal(a.length, LOCAL_DIMENSIONS)
  t.same(lexicalEmbedding('Rotate the database backups every night'), a, 'same text, same vector')
  t.ok(Math.abs(dot(a, a) - 1) < 1e-9, 'unit length')
  const near = lexicalEmbedding('nightly database backup rotation')
  const far = lexicalEmbedding('pancake batter with eggs and milk')
  t.ok(dot(a, near) > dot(a, far) + 0.2, `${dot(a, near)} vs ${dot(a, far)}`)
  t.ok(dot(lexicalEmbedding('Backups'), lexicalEmbedding('BACKUPS')) > 0.999, 'case does not matter')
  t.same(lexicalEmbedding('...'), new Array(LOCAL_DIMENSIONS).fill(0), 'no words: a zero vector')
})

t.test('the endpoint accepts a base URL with or without /v1', async (t) => {
  for (const url of ['http://h:8080', 'http://h:8080/', 'http://h:8080/v1', 'http://h:8080/v1/']) {
    t.equal(embeddingsEndpoint(url), 'http://h:8080/v1/embeddings', url)
  }
  t.equal(embeddingsEndpoint('https://api.example/openai'), 'https://api.example/openai/v1/embeddings')
})

t.test('retry delays: Retry-After wins, else exponential and capped', async (t) => {
  const after = (value: string) => new Response(null, { status: 429, headers: { 'retry-after': value } })
  t.equal(retryDelay(after('2'), 1, 500), 2000)
  t.equal(retryDelay(after('3600'), 1, 500), 30_000, 'capped')
  const date = new Date(Date.now() + 5000).toUTCString()
  t.ok(retryDelay(after(date), 1, 500) > 3000)
  t.equal(retryDelay(null, 1, 500), 500)
  t.equal(retryDelay(null, 3, 500), 2000)
  t.equal(retryDelay(null, 20, 500), 30_000)
})

t.test('http provider against a stub OpenAI-compatible server', async (t) => {
  const stub = await startEmbeddingsStub(t)
  const embedder = createHttpEmbedder({
    url: `${stub.url}/v1`,
    model: 'test-model',
    apiKey: 'sk-test',
    batchSize: 8,
    baseDelayMs: 10,
  })

  t.test('sends model, input and the key; normalises and orders by index', async (t) => {
    stub.requests.length = 0
    const vectors = await embedder.embed(['database backups', 'pancake batter'], never)
    t.equal(stub.requests.length, 1)
    t.same(stub.requests[0]?.body, { model: 'test-model', input: ['database backups', 'pancake batter'] })
    t.equal(stub.requests[0]?.authorization, 'Bearer sk-test')
    t.equal(stub.requests[0]?.path, '/v1/embeddings')
    t.ok(Math.abs(dot(vectors[0] as number[], vectors[0] as number[]) - 1) < 1e-9, 'normalised')
    t.ok(dot(vectors[0] as number[], lexicalEmbedding('database backups')) > 0.999, 'index honoured')
  })

  t.test('a 429 is retried after Retry-After, then succeeds', async (t) => {
    stub.requests.length = 0
    stub.queue.push({ status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow down' } })
    const vectors = await embedder.embed(['hello'], never)
    t.equal(vectors.length, 1)
    t.equal(stub.requests.length, 2)
    const waited = (stub.requests[1]?.at ?? 0) - (stub.requests[0]?.at ?? 0)
    t.ok(waited >= 900, `waited ${waited} ms as Retry-After said`)
  })

  t.test('5xx is retried with backoff, a bounded number of times', async (t) => {
    stub.requests.length = 0
    stub.queue.push({ status: 503 }, { status: 502 })
    t.equal((await embedder.embed(['x'], never)).length, 1, 'recovered on the third attempt')
    t.equal(stub.requests.length, 3)
    stub.requests.length = 0
    stub.queue.push(...Array.from({ length: 10 }, () => ({ status: 500 })))
    await t.rejects(embedder.embed(['x'], never), { name: 'EmbeddingError', message: /failed 5 times.*500/ })
    t.equal(stub.requests.length, 5)
    stub.queue.length = 0
  })

  t.test('a 4xx is not retried', async (t) => {
    stub.requests.length = 0
    stub.queue.push({ status: 400, body: { error: { message: 'unknown model' } } })
    await t.rejects(embedder.embed(['x'], never), { message: /answered 400: .*unknown model/ })
    t.equal(stub.requests.length, 1)
  })

  t.test('malformed replies are clear failures', async (t) => {
    const cases = [
      [{ raw: '<html>oops</html>' }, /not JSON/],
      [{ body: { data: [] } }, /expected data with 2 items/],
      [{ body: { nope: true } }, /expected data with 2 items/],
      [
        {
          body: {
            data: [
              { index: 0, embedding: [1, 2] },
              { index: 1, embedding: ['a'] },
            ],
          },
        },
        /item 1/,
      ],
      [
        {
          body: {
            data: [
              { index: 0, embedding: [1, 2] },
              { index: 0, embedding: [1, 2] },
            ],
          },
        },
        /missing/,
      ],
      [
        {
          body: {
            data: [
              { index: 0, embedding: [1, 2] },
              { index: 1, embedding: [1] },
            ],
          },
        },
        /lengths/,
      ],
      [
        {
          body: {
            data: [
              { index: 5, embedding: [1] },
              { index: 1, embedding: [1] },
            ],
          },
        },
        /item 0/,
      ],
    ] as const
    for (const [reply, message] of cases) {
      stub.queue.push(reply)
      const err = await embedder.embed(['a', 'b'], never).catch((e: Error) => e)
      t.ok(err instanceof EmbeddingError, JSON.stringify(reply))
      t.match((err as Error).message, message)
    }
  })

  t.test('the abort signal stops a hanging request and a backoff', async (t) => {
    stub.queue.push({ hang: true })
    const controller = new AbortController()
    const started = Date.now()
    setTimeout(() => controller.abort(new Error('run cancelled')), 100)
    await t.rejects(embedder.embed(['x'], controller.signal), { message: 'run cancelled' })
    t.ok(Date.now() - started < 2000)
    stub.queue.length = 0
    // Keyed on the input: on a loaded machine the aborted request above may reach the stub only
    // now, and must not take this reply.
    stub.when = (input) =>
      input[0] === 'backoff' ? { status: 429, headers: { 'retry-after': '60' } } : undefined
    const waiting = new AbortController()
    setTimeout(() => waiting.abort(new Error('timed out')), 100)
    await t.rejects(embedder.embed(['backoff'], waiting.signal), { message: 'timed out' })
    stub.when = undefined
    stub.queue.length = 0
  })
})

t.test('template-embed with the http provider, through the API', async (t) => {
  const stub = await startEmbeddingsStub(t)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-embed-http-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const texts = {
    'backup.md': '# Backup report\n\nThe nightly database backup finished.',
    'deploy.md': '# Deploy\n\nRoll out the canary release.',
    'invoice.md': '# Invoice\n\nYour invoice is due.',
    'recipe.md': '# Recipe\n\nPancake batter with eggs.',
    'welcome.md': '# Welcome\n\nThanks for signing up.',
  }
  for (const [file, text] of Object.entries(texts)) await fs.writeFile(path.join(dir, file), text)
  const app = await buildTestApp(t, {
    env: {
      SCHEDULER_ENABLED: 'false',
      TEMPLATES_DIR: dir,
      EMBEDDINGS_URL: stub.url,
      EMBEDDINGS_MODEL: 'stub-model',
      EMBEDDINGS_API_KEY: 'sk-secret',
      EMBEDDINGS_BATCH: '2',
    },
  })
  await runJob(app, 'template-sync')

  // The first batch gets a 429, then a malformed reply; the other two batches succeed.
  stub.queue.push({ status: 429, headers: { 'retry-after': '0' } }, { body: { data: 'nope' } })
  const partial = await runJob(app, 'template-embed')
  t.equal(partial.state, 'succeeded', JSON.stringify(partial.error))
  t.match(partial.result, {
    embedded: 3,
    skipped: 0,
    failed: 2,
    model: 'stub-model',
    provider: 'http',
    dimensions: LOCAL_DIMENSIONS,
  })
  t.match(partial.result.errors, [/malformed embeddings reply/])
  t.same(
    stub.requests.map((r) => r.body.input?.length),
    [2, 2, 2, 1],
    'batches of EMBEDDINGS_BATCH, the 429 retried',
  )
  t.ok(stub.requests.every((r) => r.authorization === 'Bearer sk-secret' && r.body.model === 'stub-model'))

  const retry = await runJob(app, 'template-embed', { missing: true })
  t.match(retry.result, { embedded: 2, skipped: 3, failed: 0 }, 'the failed batch is picked up next time')

  const hits = (await app.inject('/templates/search?q=nightly%20database%20backup&limit=2')).json()
  t.equal(hits.model, 'stub-model')
  t.equal(hits.items[0].path, 'backup.md')

  stub.when = () => ({ status: 200, raw: 'not json' })
  const broken = await runJob(app, 'template-embed', { missing: false })
  t.equal(broken.state, 'failed', 'nothing embedded at all is a failed run')
  t.equal(broken.error.code, 'embedding_failed')
  t.match(broken.error.message, /not JSON/)
  const search = await app.inject('/templates/search?q=backup')
  t.equal(search.statusCode, 502, 'a broken embeddings server is a bad gateway')
  t.match(search.json().message, /^embedding the query failed: .*not JSON/, 'and the reply says so')
})

t.test('embeddings configuration: defaults, and the URL hidden in errors', async (t) => {
  const { loadConfig } = await import('../src/config.js')
  // The variable and the value are named (the wording of the rule is config.ts's).
  t.throws(() => loadConfig({ EMBEDDINGS_BATCH: '0' }), /EMBEDDINGS_BATCH\b.*\b0\b/)
  const url = (() => {
    try {
      loadConfig({ EMBEDDINGS_URL: 'ftp://secret@host' })
    } catch (err) {
      return (err as Error).message
    }
  })()
  t.match(url, /EMBEDDINGS_URL\b.*\(hidden\)/)
  t.notMatch(url, /secret/, 'the URL may hold credentials: never in the message')
  const config = loadConfig({})
  t.equal(config.embeddingsModel, 'Qodo/Qodo-Embed-1-1.5B')
  t.equal(config.embeddingsBatch, 32)
  t.equal(config.embeddingsUrl, undefined)
})
