// GET /templates/search and the paid embeddings server behind it: query vectors are cached (same
// query and model within a minute: no new call; bounded, least recently used dropped first), and
// each token may search TEMPLATE_SEARCH_PER_MINUTE times a minute, then gets 429.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { createQueryCache } from '../src/features/templates/query-cache.js'
import { buildTestApp, eventually } from './helper.js'
import { startEmbeddingsStub } from './support/embeddings-stub.js'

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

t.test('the query cache: TTL, model in the key, LRU bound, failures not kept', async (t) => {
  let now = 1_000_000
  const cache = createQueryCache({ ttlMs: 60_000, maxEntries: 2, now: () => now })
  let calls = 0
  const compute = (value: number) => async () => {
    calls++
    return [value]
  }

  t.same(await cache.get('m', 'a', compute(1)), [1])
  t.same(await cache.get('m', 'a', compute(2)), [1], 'a hit: the first vector')
  t.equal(calls, 1)
  t.same(await cache.get('other-model', 'a', compute(3)), [3], 'another model is another key')
  t.equal(calls, 2)

  now += 60_000
  t.same(await cache.get('m', 'a', compute(4)), [4], 'expired after ttlMs')
  t.equal(calls, 3)

  // Bounded: m/a was just used, so adding m/b drops other-model/a, the least recently used.
  await cache.get('m', 'b', compute(5))
  t.equal(cache.size, 2)
  t.same(await cache.get('m', 'a', compute(6)), [4], 'the recently used entry stayed')
  t.same(await cache.get('other-model', 'a', compute(7)), [7], 'the least recently used one went')
  t.equal(cache.size, 2)

  const failing = async () => {
    calls++
    throw new Error('server down')
  }
  const before = calls
  await t.rejects(cache.get('m', 'down', failing), /server down/)
  t.same(await cache.get('m', 'down', compute(8)), [8], 'a failure is not cached')
  t.equal(calls, before + 2)

  let release = (_: number[]) => {}
  const slow = () => {
    calls++
    return new Promise<number[]>((resolve) => {
      release = resolve
    })
  }
  const first = cache.get('m', 'slow', slow)
  const second = cache.get('m', 'slow', slow)
  release([9])
  t.same(await Promise.all([first, second]), [[9], [9]], 'concurrent identical queries share one call')
  t.equal(calls, before + 3)
})

t.test('search: repeated queries reuse their embedding; a token is limited per minute', async (t) => {
  const stub = await startEmbeddingsStub(t)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-search-limit-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  await fs.writeFile(path.join(dir, 'backup.md'), '# Backup report\n\nThe nightly database backup finished.')
  await fs.writeFile(path.join(dir, 'recipe.md'), '# Recipe\n\nPancake batter with eggs.')
  const app = await buildTestApp(t, {
    env: {
      SCHEDULER_ENABLED: 'false',
      TEMPLATES_DIR: dir,
      EMBEDDINGS_URL: stub.url,
      EMBEDDINGS_MODEL: 'stub-model',
      TEMPLATE_SEARCH_PER_MINUTE: '5',
    },
  })
  await runJob(app, 'template-sync')
  t.match((await runJob(app, 'template-embed')).result, { embedded: 2, failed: 0 })
  stub.requests.length = 0

  const search = (q: string, authorization?: string) =>
    app.inject({
      url: `/templates/search?q=${encodeURIComponent(q)}&limit=1`,
      ...(authorization ? { headers: { authorization } } : {}),
    })

  const first = await search('nightly database backup')
  t.equal(first.statusCode, 200, first.body)
  t.equal(first.json().items[0].path, 'backup.md')
  t.equal(stub.requests.length, 1, 'the first search embeds the query')
  const second = await search('nightly database backup')
  t.same(second.json(), first.json(), 'the same answer')
  t.equal(stub.requests.length, 1, 'the second identical search makes no embeddings call')
  const other = await search('pancake batter')
  t.equal(other.json().items[0].path, 'recipe.md')
  t.equal(stub.requests.length, 2, 'another query is embedded')

  // A failed call is not cached: the next identical search asks again.
  stub.queue.push({ status: 400, body: { error: { message: 'bad input' } } })
  t.equal((await search('welcome')).statusCode, 502)
  t.equal((await search('welcome')).statusCode, 200)
  t.equal(stub.requests.length, 4)

  // Five searches this minute (cached ones count too): the sixth is refused before any work.
  const limited = await search('nightly database backup')
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), {
    statusCode: 429,
    error: 'Too Many Requests',
    message: /more than 5 requests a minute to this endpoint; retry in \d+ s/,
  })
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After says when')
  // HEAD would have a limit of its own: there is no HEAD search.
  const head = await app.inject({ method: 'HEAD', url: '/templates/search?q=a%20new%20query' })
  t.not(head.statusCode, 200, 'no HEAD search')
  t.equal(stub.requests.length, 4)

  // Per token: another token has its own allowance; other routes are not limited by it.
  const created = await app.inject({
    method: 'POST',
    url: '/tokens',
    payload: { name: 'search-viewer', role: 'viewer' },
  })
  t.equal(created.statusCode, 201, created.body)
  const viewer = `Bearer ${created.json().token}`
  t.equal((await search('nightly database backup', viewer)).statusCode, 200, 'another token may search')
  t.equal((await app.inject('/templates')).statusCode, 200, 'listing is not the search limit')
})
