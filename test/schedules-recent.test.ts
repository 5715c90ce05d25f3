// GET /schedules?recent=N: each schedule with its latest N finished runs (succeeded, failed,
// cancelled; oldest first, newest last) and their success rate, for the dashboard's sparklines.
// Runs are written straight into job_runs, with known durations, so every value can be checked.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp } from './helper.js'

interface Recent {
  id: number
  state: string
  durationMs: number | null
  finishedAt: string
}

interface Listed {
  name: string
  recent?: Recent[]
  successRate?: number | null
}

const HOUR = 3_600_000

/** Records a finished run of `schedule` that took `ms` (null: it never started), `ago` hours before now. */
async function record(app: FastifyInstance, schedule: string, state: string, ms: number | null, ago: number) {
  const finished = new Date(Date.now() - ago * HOUR)
  const started = ms === null ? null : new Date(finished.getTime() - ms)
  const [row] = await app.sql<{ id: string }[]>`
    insert into job_runs (job, schedule, trigger, state, args, queued_at, started_at, finished_at)
    values ('sleeper', ${schedule}, 'schedule', ${state}, '{}', ${started ?? finished}, ${started}, ${finished})
    returning id`
  return Number(row?.id)
}

async function list(app: FastifyInstance, query: string): Promise<Map<string, Listed>> {
  const res = await app.inject(`/schedules?${query}`)
  if (res.statusCode !== 200) throw new Error(`GET /schedules?${query}: ${res.statusCode} ${res.body}`)
  return new Map(res.json().items.map((s: Listed) => [s.name, s]))
}

t.test('recent runs and success rate of each schedule', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  for (const name of ['busy', 'quiet', 'halted', 'other']) {
    const res = await app.inject({
      method: 'POST',
      url: '/schedules',
      payload: { name, job: 'sleeper', cron: '0 3 * * *', enabled: false },
    })
    t.equal(res.statusCode, 201, `${name} created`)
  }

  // busy: 40 finished runs, oldest first, every 4th failed and every 10th cancelled; duration i s.
  const expected: Recent[] = []
  for (let i = 1; i <= 40; i++) {
    const state = i % 10 === 0 ? 'cancelled' : i % 4 === 0 ? 'failed' : 'succeeded'
    const id = await record(app, 'busy', state, i * 1000, 100 - i)
    expected.push({ id, state, durationMs: i * 1000, finishedAt: '' })
  }
  // Runs that are not finished, or never ran, are left out; so are other schedules' runs.
  await record(app, 'busy', 'skipped', 0, 0.5)
  await app.sql`
    insert into job_runs (job, schedule, trigger, state, args, started_at)
    values ('sleeper', 'busy', 'schedule', 'running', '{}', now()),
           ('sleeper', 'busy', 'manual', 'queued', '{}', null)`
  await record(app, 'other', 'failed', 500, 1)
  // halted: only a run cancelled before it started.
  const cancelled = await record(app, 'halted', 'cancelled', null, 2)

  const all = await list(app, 'recent=30')
  const busy = all.get('busy')
  t.ok(busy?.recent, 'busy has recent runs')
  const recent = busy?.recent ?? []
  const newest30 = expected.slice(-30)
  t.equal(recent.length, 30, 'at most `recent` runs')
  t.same(
    recent.map((r) => r.id),
    newest30.map((r) => r.id),
    'the newest 30 finished runs, oldest first and newest last; not skipped, running or queued ones',
  )
  t.same(
    recent.map((r) => r.state),
    newest30.map((r) => r.state),
  )
  t.same(
    recent.map((r) => r.durationMs),
    newest30.map((r) => r.durationMs),
    'durations from start to finish',
  )
  t.ok(
    recent.every((r, i) => i === 0 || Date.parse(r.finishedAt) > Date.parse(recent[i - 1]?.finishedAt ?? '')),
    'finishedAt as ISO timestamps, in order',
  )
  // Runs 11-40: cancelled 20, 30, 40; failed 12, 16, 24, 28, 32, 36; succeeded the other 21.
  t.equal(busy?.successRate, 21 / 27, 'succeeded / (succeeded + failed); cancelled runs do not count')

  t.same(all.get('quiet')?.recent, [], 'a schedule with no runs: an empty list')
  t.equal(all.get('quiet')?.successRate, null, 'and no rate')
  t.same(
    all.get('halted')?.recent,
    [
      {
        id: cancelled,
        state: 'cancelled',
        durationMs: null,
        finishedAt: all.get('halted')?.recent?.[0]?.finishedAt,
      },
    ],
    'a run cancelled before it started has no duration',
  )
  t.equal(all.get('halted')?.successRate, null, 'cancelled runs alone give no rate')
  t.same(
    all.get('other')?.recent?.map((r) => [r.state, r.durationMs]),
    [['failed', 500]],
  )
  t.equal(all.get('other')?.successRate, 0)

  const five = (await list(app, 'recent=5')).get('busy')
  t.same(
    five?.recent?.map((r) => r.id),
    expected.slice(-5).map((r) => r.id),
    'recent=5: the newest 5',
  )
  // 36 failed, 37-39 succeeded, 40 cancelled.
  t.equal(five?.successRate, 3 / 4)

  for (const query of ['', 'recent=0']) {
    const plain = (await list(app, query)).get('busy')
    t.notOk(plain && 'recent' in plain, `${query || 'no recent'}: no recent runs`)
    t.notOk(plain && 'successRate' in plain, `${query || 'no recent'}: no rate`)
  }

  // Every page gets its own schedules' runs, filters apply as before.
  const first = await app.inject('/schedules?recent=3&limit=1&q=busy')
  t.same(
    first.json().items.map((s: Listed) => [s.name, s.recent?.length]),
    [['busy', 3]],
  )
  const paged = await app.inject('/schedules?recent=2&limit=1')
  const cursor = paged.json().nextCursor
  t.ok(cursor, 'a next page')
  const second = await app.inject(`/schedules?recent=2&limit=1&cursor=${encodeURIComponent(cursor)}`)
  t.equal(second.statusCode, 200)
  t.ok(
    second.json().items.every((s: Listed) => Array.isArray(s.recent)),
    'the next page has recent runs too',
  )

  // A viewer may ask for them (GET /schedules is a viewer's).
  const token = (
    await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'wall', role: 'viewer' } })
  ).json().token
  const asViewer = await app.inject({
    url: '/schedules?recent=30&q=busy',
    headers: { authorization: `Bearer ${token}` },
  })
  t.equal(asViewer.statusCode, 200)
  t.equal(asViewer.json().items[0]?.recent?.length, 30)
})

t.test('recent out of range is a 400', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  for (const value of ['101', '-1', '2.5', 'many']) {
    const res = await app.inject(`/schedules?recent=${value}`)
    t.equal(res.statusCode, 400, `recent=${value}`)
    t.match(res.json().message, /recent/, `recent=${value}: the message names the parameter`)
  }
  t.equal((await app.inject('/schedules?recent=100')).statusCode, 200, 'recent=100 is the most')
})

t.test('a page of 1000 schedules with long histories', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  // 1000 schedules with 60 finished runs each: 60 000 rows, the newest 30 of each read.
  await app.sql`
    insert into schedules (name, job, cron, timezone, args, enabled)
    select 'bulk-' || lpad(i::text, 4, '0'), 'sleeper', '0 3 * * *', 'UTC', '{}', false
    from generate_series(1, 1000) i`
  await app.sql`
    insert into job_runs (job, schedule, trigger, state, args, started_at, finished_at)
    select 'sleeper', 'bulk-' || lpad(i::text, 4, '0'), 'schedule',
           case when r % 5 = 0 then 'failed' else 'succeeded' end, '{}',
           now() - make_interval(hours => 100 - r), now() - make_interval(hours => 100 - r) + interval '2 seconds'
    from generate_series(1, 1000) i, generate_series(1, 60) r`
  await app.sql`analyze job_runs`
  const res = await app.inject('/schedules?recent=30&limit=1000&q=bulk-')
  t.equal(res.statusCode, 200)
  const items: Listed[] = res.json().items
  t.equal(items.length, 1000)
  t.ok(
    items.every((s) => s.recent?.length === 30 && s.successRate === 24 / 30),
    'each has its newest 30 runs (6 of them failed)',
  )
  t.ok(
    items.every((s) => s.recent?.every((r) => r.durationMs === 2000)),
    'with their durations',
  )
})
