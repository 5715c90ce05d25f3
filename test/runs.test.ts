import t from 'tap'
import { createPageCache } from '../src/lib/page-cache.js'
import { buildTestApp, eventually } from './helper.js'

t.test('run history: newest first, filters, keyset pagination', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  // 120 finished runs spread over jobs, states, triggers and two days.
  await app.sql`
    insert into job_runs (job, schedule, trigger, state, args, queued_at, started_at, finished_at, scheduled_for)
    select case when i % 2 = 0 then 'cache-clear' else 'other-job' end,
           case when i % 3 = 0 then 'nightly' else null end,
           case when i % 3 = 0 then 'schedule' else 'manual' end,
           case when i % 5 = 0 then 'failed' else 'succeeded' end,
           jsonb_build_object('i', i),
           timestamptz '2026-01-01T00:00:00Z' + i * interval '30 minutes',
           timestamptz '2026-01-01T00:00:00Z' + i * interval '30 minutes',
           timestamptz '2026-01-01T00:00:01Z' + i * interval '30 minutes',
           case when i % 3 = 0 then timestamptz '2026-01-01T00:00:00Z' + i * interval '30 minutes' end
    from generate_series(1, 120) i`

  t.test('pages walk every run exactly once, newest first', async (t) => {
    const seen: number[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const url: string = `/runs?limit=25${cursor ? `&cursor=${cursor}` : ''}`
      const res = await app.inject(url)
      t.equal(res.statusCode, 200)
      const body = res.json()
      seen.push(...body.items.map((r: { args: { i: number } }) => r.args.i))
      cursor = body.nextCursor
      pages++
    } while (cursor)
    t.equal(pages, 5)
    t.same(
      seen,
      Array.from({ length: 120 }, (_, k) => 120 - k),
    )
  })

  t.test('an exact last page has a null nextCursor', async (t) => {
    const body = (await app.inject('/runs?limit=120')).json()
    t.equal(body.items.length, 120)
    t.equal(body.nextCursor, null)
    t.equal((await app.inject('/runs')).json().items.length, 50, 'default limit 50')
  })

  t.test('filters combine', async (t) => {
    const failedCache = (await app.inject('/runs?job=cache-clear&state=failed&limit=500')).json().items
    t.equal(failedCache.length, 12)
    t.ok(
      failedCache.every(
        (r: { job: string; state: string }) => r.job === 'cache-clear' && r.state === 'failed',
      ),
    )
    const scheduled = (await app.inject('/runs?schedule=nightly&trigger=schedule&limit=500')).json().items
    t.equal(scheduled.length, 40)
    t.equal(scheduled[0].scheduledFor, '2026-01-03T12:00:00.000Z')
    const window = (
      await app.inject('/runs?since=2026-01-02T00:00:00Z&until=2026-01-02T06:00:00Z&limit=500')
    ).json().items
    t.same(
      window.map((r: { args: { i: number } }) => r.args.i),
      [59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48],
    )
    const filteredPage = (await app.inject('/runs?job=other-job&limit=10')).json()
    const next = (await app.inject(`/runs?job=other-job&limit=10&cursor=${filteredPage.nextCursor}`)).json()
    t.same(
      next.items.map((r: { args: { i: number } }) => r.args.i),
      [99, 97, 95, 93, 91, 89, 87, 85, 83, 81],
    )
  })

  t.test('a run has the documented shape', async (t) => {
    const [run] = (await app.inject('/runs?limit=1')).json().items
    t.same(Object.keys(run).sort(), [
      'args',
      'attempt',
      'durationMs',
      'error',
      'finishedAt',
      'id',
      'instance',
      'job',
      'maxAttempts',
      'parentId',
      'progress',
      'queuedAt',
      'result',
      'retryOf',
      'runAfter',
      'schedule',
      'scheduledFor',
      'startedAt',
      'state',
      'then',
      'trigger',
      'waitingFor',
    ])
    t.equal(run.durationMs, 1000)
    const one = await app.inject(`/runs/${run.id}`)
    t.same(one.json(), run)
    t.equal((await app.inject('/runs/123456789')).statusCode, 404)
  })

  t.test('bad query parameters are 400s that say what is wrong', async (t) => {
    const bad: Array<[string, RegExp]> = [
      ['/runs?limit=0', /limit/],
      ['/runs?limit=501', /limit/],
      ['/runs?limit=ten', /limit/],
      ['/runs?state=exploded', /state/],
      ['/runs?trigger=cosmic', /trigger/],
      ['/runs?since=yesterday', /since/],
      ['/runs?cursor=bm9wZQ', /cursor/],
      ['/runs?colour=red', /querystring has unknown property 'colour'; allowed: job, schedule, state/],
      ['/runs/0', /id/],
      ['/runs/1e400', /id/],
      ['/runs?limit=1e400', /limit/],
      ['/schedules?count=1e400', /count/],
      ['/schedules/cache-clear?count=-1e999', /count/],
    ]
    for (const [url, message] of bad) {
      const res = await app.inject(url)
      t.equal(res.statusCode, 400, url)
      t.match(res.json().message, message, url)
    }
  })
})

t.test('args and results come back exactly as stored: keys inside JSON are not renamed', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const result = { rows_deleted: 3, by_table: { analysis_cache: 3 }, list: [{ snake_key: 1 }] }
  const args = { older_than_days: 7 }
  const [row] = await app.sql<{ id: number }[]>`
    insert into job_runs (job, trigger, state, args, result, queued_at, started_at, finished_at)
    values ('cache-clear', 'manual', 'succeeded', ${app.sql.json(args)}, ${app.sql.json(result)},
            now(), now(), now())
    returning id`
  const run = (await app.inject(`/runs/${row?.id}`)).json()
  t.same(run.result, result)
  t.same(run.args, args)
})

t.test('pages are served from memory until a run changes, and never older than RUNS_CACHE_MS', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', RUNS_CACHE_MS: '1500' } })
  const list = async (headers: Record<string, string> = {}) => {
    const res = await app.inject({ url: '/runs?limit=5', headers })
    t.equal(res.statusCode, 200)
    return { ids: res.json().items.map((r: { id: number }) => r.id), cache: res.headers['cache-status'] }
  }
  t.same(await list(), { ids: [], cache: 'steward; fwd=miss' })
  t.same(await list(), { ids: [], cache: 'steward; hit' })

  // A run triggered here shows at once: the runner's own event drops the cache.
  const run = (await app.inject({ method: 'POST', url: '/jobs/cache-clear/runs' })).json()
  t.same((await list()).ids, [run.id], 'read your own write')

  await eventually(
    async () => ((await app.inject(`/runs/${run.id}`)).json().state === 'succeeded' ? true : undefined),
    5000,
    'the run to end',
  )

  // A row written behind Steward's back (another instance, psql): the change feed drops the cache.
  await list()
  const [other] = await app.sql<{ id: string }[]>`
    insert into job_runs (job, trigger, state, args, started_at, finished_at)
    values ('cache-clear', 'manual', 'succeeded', '{}', now(), now()) returning id`
  await eventually(
    async () => ((await list()).ids[0] === Number(other?.id) ? true : undefined),
    1000,
    'the new row to show',
  )

  // A delete sends no notification: the page may be served until it is RUNS_CACHE_MS old, not longer.
  await eventually(async () => ((await list()).cache === 'steward; hit' ? true : undefined), 2000, 'a hit')
  await app.sql`delete from job_runs where id = ${other?.id ?? 0}`
  const deletedAt = Date.now()
  t.same((await list({ 'cache-control': 'no-cache' })).ids, [run.id], 'no-cache reads the database')
  await eventually(
    async () => ((await list()).ids.length === 1 ? true : undefined),
    3000,
    'the delete to show',
  )
  t.ok(Date.now() - deletedAt < 3000)

  t.test('bad cursors are still 400s', async (t) => {
    const res = await app.inject('/runs?cursor=bm9wZQ')
    t.equal(res.statusCode, 400)
  })
})

t.test('page cache: age limit, size limit, and no page kept from a query a change overtook', async (t) => {
  let now = 0
  const cache = createPageCache({ maxAgeMs: 100, maxEntries: 2, maxChars: 10, now: () => now })
  const load = (body: string) => async () => body
  t.same(await cache.get('a', load('1')), ['1', 'miss'])
  t.same(await cache.get('a', load('2')), ['1', 'hit'])
  now = 100
  t.same(await cache.get('a', load('3')), ['3', 'miss'], 'too old')
  await cache.get('b', load('b'))
  await cache.get('c', load('c'))
  t.same(cache.size(), { pages: 2, chars: 2 }, 'the oldest entry makes room')
  t.same(await cache.get('c', load('x')), ['c', 'hit'])
  await cache.get('big', load('0123456789a'))
  t.same(await cache.get('big', load('small')), ['small', 'miss'], 'a page over the limit is not kept')
  t.same(cache.size(), { pages: 2, chars: 6 })
  await cache.get('e', load('eeeeeeeee'))
  t.same(cache.size(), { pages: 1, chars: 9 }, 'older pages make room for the characters too')
  now = 300
  await cache.get('f', load('f'))
  t.same(cache.size(), { pages: 1, chars: 1 }, 'expired pages go first')

  let finish: (body: string) => void = () => {}
  const slow = cache.get('d', () => new Promise<string>((resolve) => (finish = resolve)))
  cache.invalidate()
  finish('before the change')
  t.same(await slow, ['before the change', 'miss'])
  t.same(await cache.get('d', load('after')), ['after', 'miss'], 'the overtaken page was not kept')

  const off = createPageCache({ maxAgeMs: 0, maxEntries: 2, maxChars: 10 })
  await off.get('a', load('1'))
  t.same(await off.get('a', load('2')), ['2', 'miss'], 'RUNS_CACHE_MS=0 turns it off')
})
