// Execution guarantees inside one or two app instances: exactly-once claims, retries with backoff,
// abandoned-run rescue, cross-instance cancel, catch-up after downtime, shutdown, pruning.

import type { FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t from 'tap'
import { COLUMN_CASE } from '../src/db/embedded.js'
import type { Run } from '../src/engine/run-store.js'
import { createRunStore } from '../src/engine/run-store.js'
import { retryDelayMs } from '../src/lib/backoff.js'
import { allTestJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

const runsOf = async (app: FastifyInstance, query: string): Promise<Run[]> =>
  (await app.inject(`/runs?limit=500&${query}`)).json().items

t.test('twenty concurrent claims of the same fires: each fire won exactly once, 50 rounds', async (t) => {
  const url = await createTestDatabase(t)
  const pools = [
    postgres(url, { max: 10, transform: COLUMN_CASE }),
    postgres(url, { max: 10, transform: COLUMN_CASE }),
  ]
  t.teardown(() => Promise.all(pools.map((p) => p.end())))
  const services = pools.map(createRunStore)
  const base = Date.parse('2026-01-01T00:00:00Z')
  const schedules = Array.from({ length: 8 }, (_, i) => `race-${i}`)
  for (let round = 0; round < 50; round++) {
    const scheduledFor = new Date(base + round * 1000)
    // Each claimer lists the fires in its own order: the locks must still be taken in one order.
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (services[i % 2] as (typeof services)[0]).claimFires(
          [...schedules]
            .sort(() => Math.random() - 0.5)
            .map((schedule) => ({
              run: {
                job: 'sleeper',
                schedule,
                trigger: 'schedule' as const,
                args: {},
                maxAttempts: 1,
                scheduledFor,
              },
              overlap: 'allow' as const,
            })),
        ),
      ),
    )
    const won = outcomes.flat().flatMap((o) => (o.outcome === 'taken' ? [] : [o.run.schedule]))
    const fires = new Set(won)
    if (won.length !== schedules.length || fires.size !== schedules.length)
      t.fail(`round ${round}: ${won.length} winners for ${schedules.length} fires`)
  }
  const [row] = await (pools[0] as postgres.Sql)`
    select count(*)::int as n, count(distinct (schedule, scheduled_for))::int as fires from job_runs`
  t.same(row, { n: 400, fires: 400 }, 'one row per fire')
})

t.test('a claim records overlap and given skips, and tells each fire apart', async (t) => {
  const url = await createTestDatabase(t)
  const sql = postgres(url, { max: 2, transform: COLUMN_CASE })
  t.teardown(() => sql.end())
  const runs = createRunStore(sql)
  const at = (s: number) => new Date(Date.parse('2026-01-01T00:00:00Z') + s * 1000)
  const fire = (
    schedule: string,
    s: number,
    overlap: 'skip' | 'allow',
    skip?: { code: string; message: string },
  ) => ({
    run: {
      job: 'sleeper',
      schedule,
      trigger: 'schedule' as const,
      args: { s },
      maxAttempts: 1,
      scheduledFor: at(s),
    },
    overlap,
    skip,
  })
  const first = await runs.claimFires([fire('a', 0, 'skip'), fire('b', 0, 'skip')])
  t.same(
    first.map((o) => o.outcome),
    ['claimed', 'claimed'],
  )
  const missed = { code: 'missed', message: 'no instance could fire it at the time' }
  const second = await runs.claimFires([
    fire('a', 1, 'skip'),
    fire('b', 1, 'allow'),
    fire('b', 2, 'allow', missed),
    fire('a', 0, 'skip'),
    fire('b', 1, 'allow'),
  ])
  t.same(
    second.map((o) => o.outcome),
    ['skipped', 'claimed', 'skipped', 'taken', 'taken'],
    'a fire listed twice is won once',
  )
  const [overlap, allowed, given] = second as Array<Extract<(typeof second)[0], { run: unknown }>>
  t.match(overlap?.run.error, { code: 'overlap', message: /^run \d+ of this schedule was still running$/ })
  t.same(allowed?.run.args, { s: 1 }, 'each outcome is its own fire')
  t.equal(allowed?.run.state, 'queued')
  t.same(given?.run.error, missed)
  t.ok(given?.run.finishedAt, 'a skipped fire is finished at once')
})

t.test('retry delay formula', async (t) => {
  t.equal(
    retryDelayMs(1, 1000, 60_000, () => 0),
    1000,
  )
  t.equal(
    retryDelayMs(2, 1000, 60_000, () => 0),
    2000,
  )
  t.equal(
    retryDelayMs(3, 1000, 60_000, () => 0.999),
    Math.round(4000 * 1.24975),
  )
  t.equal(
    retryDelayMs(20, 1000, 60_000, () => 0),
    60_000,
    'capped',
  )
  t.equal(
    retryDelayMs(20, 1000, 60_000, () => 0.5),
    67_500,
    'jitter on top of the cap, at most 25%',
  )
})

t.test('failed attempts are retried with backoff, each its own run, then fail for good', async (t) => {
  const app = await buildTestApp(t, {
    jobs: allTestJobs,
    env: { SCHEDULER_ENABLED: 'false', RETRY_BASE_MS: '300', RETRY_MAX_MS: '5000', RUN_POLL_MS: '100' },
  })
  const first = (await app.inject({ method: 'POST', url: '/jobs/flaky/runs' })).json()
  const attempts = await eventually(
    async () => {
      const runs = await runsOf(app, 'job=flaky')
      return runs.length === 3 && runs.every((r) => r.state === 'failed') ? runs.reverse() : undefined
    },
    8000,
    'three failed attempts',
  )
  t.same(
    attempts.map((r) => r.attempt),
    [1, 2, 3],
  )
  t.same(
    attempts.map((r) => r.trigger),
    ['manual', 'retry', 'retry'],
  )
  t.same(
    attempts.map((r) => r.retryOf),
    [null, first.id, first.id],
    'retries link to the first attempt',
  )
  t.same(
    attempts.map((r) => r.error?.message),
    ['attempt 1 failed', 'attempt 2 failed', 'attempt 3 failed'],
  )
  for (const [i, low] of [
    [1, 300],
    [2, 600],
  ] as const) {
    const gap = Date.parse(String(attempts[i]?.startedAt)) - Date.parse(String(attempts[i - 1]?.finishedAt))
    // The formula gives [low, 1.25 × low); the poll wakes at the due time, plus scheduling slack.
    t.ok(
      gap >= low - 20 && gap < low * 1.25 + 400,
      `attempt ${i + 1} started ${gap} ms after the failure (${low}-${low * 1.25} ms)`,
    )
  }
  await new Promise((r) => setTimeout(r, 1500))
  t.equal((await runsOf(app, 'job=flaky')).length, 3, 'no attempt after the last')

  const once = (await app.inject({ method: 'POST', url: '/jobs/second-time/runs' })).json()
  const retried = await eventually(
    async () => {
      const [latest] = await runsOf(app, 'job=second-time')
      return latest?.state === 'succeeded' ? latest : undefined
    },
    5000,
    'the second attempt to succeed',
  )
  t.equal(retried.retryOf, once.id)
  t.same(retried.result, { attempt: 2 })
})

t.test('abandoned runs are failed and retried; a heartbeating run is never rescued', async (t) => {
  const app = await buildTestApp(t, {
    jobs: allTestJobs,
    env: {
      SCHEDULER_ENABLED: 'false',
      RUN_STALE_MS: '1000',
      RUN_HEARTBEAT_MS: '200',
      RUN_POLL_MS: '100',
      RETRY_BASE_MS: '0',
    },
  })
  // A run whose instance died mid-run: running, no heartbeat for an hour.
  const [{ id: deadId }] = await app.sql<[{ id: string }]>`
    insert into job_runs (job, trigger, state, attempt, max_attempts, args, started_at, heartbeat_at, instance)
    values ('sleeper', 'manual', 'running', 1, 2, '{"ms": 0}', now() - interval '1 hour', now() - interval '1 hour', 'dead:1')
    returning id`
  const long = (
    await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 2500 } } })
  ).json()

  const abandoned = await eventually(
    async () => {
      const run = (await app.inject(`/runs/${deadId}`)).json()
      return run.state === 'failed' ? run : undefined
    },
    5000,
    'the dead run to be rescued',
  )
  t.equal(abandoned.error.code, 'abandoned')
  t.match(abandoned.error.message, /dead:1/)
  const retry = await eventually(
    async () => {
      const [run] = await runsOf(app, 'trigger=retry&job=sleeper')
      return run?.state === 'succeeded' ? run : undefined
    },
    5000,
    'its retry to succeed',
  )
  t.equal(retry.retryOf, Number(deadId))
  t.equal(retry.attempt, 2)

  const done = await eventually(
    async () => {
      const run = (await app.inject(`/runs/${long.id}`)).json()
      return run.state !== 'running' && run.state !== 'queued' ? run : undefined
    },
    6000,
    'the long run to end',
  )
  t.equal(done.state, 'succeeded', 'a run that kept heartbeating past the stale horizon was left alone')
})

t.test('cancel reaches a run executing on another instance', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false', RUN_HEARTBEAT_MS: '5000' }
  const a = await buildTestApp(t, { jobs: allTestJobs, databaseUrl, env: { ...env, INSTANCE_ID: 'a' } })
  const b = await buildTestApp(t, { jobs: allTestJobs, databaseUrl, env: { ...env, INSTANCE_ID: 'b' } })
  const run = (
    await a.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 20_000 } } })
  ).json()
  // Either instance may claim the queued run (both poll); cancel through the other one.
  const running = await eventually(async () => {
    const r = (await a.inject(`/runs/${run.id}`)).json()
    return r.state === 'running' ? r : undefined
  })
  const other = running.instance === 'a' ? b : a
  const requested = Date.now()
  const res = await other.inject({ method: 'POST', url: `/runs/${run.id}/cancel` })
  t.equal(res.statusCode, 202)
  const cancelled = await eventually(
    async () => {
      const r = (await other.inject(`/runs/${run.id}`)).json()
      return r.state === 'cancelled' ? r : undefined
    },
    5000,
    'the cancel to reach the executing instance',
  )
  t.equal(cancelled.instance, running.instance, 'the run was stopped where it ran')
  t.ok(Date.now() - requested < 5000)
})

t.test('catch-up after downtime, decided with an injected clock', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const sql = postgres(databaseUrl, { max: 1 })
  t.teardown(() => sql.end())
  // Three schedules last fired (or edited) long ago; Steward was down since.
  await sql`
    insert into schedules (name, job, cron, timezone, args, catch_up, updated_at) values
      ('nightly', 'sleeper', '0 3 * * *', 'UTC', '{"ms": 0}', 'latest', '2026-03-01T00:00:00Z'),
      ('hourly-none', 'sleeper', '0 * * * *', 'UTC', '{"ms": 0}', 'none', '2026-03-01T00:00:00Z'),
      ('berlin', 'sleeper', '30 2 * * *', 'Europe/Berlin', '{"ms": 0}', 'latest', '2026-03-01T00:00:00Z')`
  await sql`
    insert into job_runs (job, schedule, trigger, state, args, scheduled_for, finished_at) values
      ('sleeper', 'nightly', 'schedule', 'succeeded', '{}', '2026-03-10T03:00:00Z', '2026-03-10T03:00:01Z'),
      ('sleeper', 'berlin', 'schedule', 'succeeded', '{}', '2026-03-27T01:30:00Z', '2026-03-27T01:30:01Z')`
  // Not on the hour: a fire due exactly now is on time, and runs as an ordinary fire.
  const now = new Date('2026-03-31T11:59:00Z')
  const app = await buildTestApp(t, { jobs: allTestJobs, databaseUrl, clock: () => now })

  const nightly = await eventually(
    async () => {
      const runs = await runsOf(app, 'schedule=nightly')
      return runs.length >= 22 && runs.some((r) => r.state === 'succeeded' && r.trigger === 'catch-up')
        ? runs
        : undefined
    },
    5000,
    'nightly catch-up',
  )
  const caughtUp = nightly.filter((r) => r.trigger === 'catch-up' && r.state !== 'skipped')
  t.same(
    caughtUp.map((r) => r.scheduledFor),
    ['2026-03-31T03:00:00.000Z'],
    'only the latest missed fire runs',
  )
  const skipped = nightly.filter((r) => r.state === 'skipped')
  t.equal(skipped.length, 20, 'Mar 11 … Mar 30 recorded as missed')
  t.ok(skipped.every((r) => r.error?.code === 'missed' && r.trigger === 'catch-up'))

  const hourly = await eventually(
    async () => {
      const runs = await runsOf(app, 'schedule=hourly-none')
      return runs.length >= 100 ? runs : undefined
    },
    5000,
    'hourly-none to be settled',
  )
  t.equal(hourly.length, 100, 'at most the latest 100 missed fires are recorded')
  t.ok(
    hourly.every((r) => r.state === 'skipped'),
    'catchUp none runs nothing',
  )
  t.equal(hourly[0]?.scheduledFor, '2026-03-31T11:00:00.000Z')

  const berlin = await eventually(
    async () => {
      const runs = await runsOf(app, 'schedule=berlin')
      return runs.length >= 4 ? runs : undefined
    },
    5000,
    'berlin to be settled',
  )
  // 02:30 local does not exist on 2026-03-29 (clocks jump 02:00 → 03:00): no fire that day.
  t.same(
    berlin.map((r) => r.scheduledFor),
    [
      '2026-03-31T00:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-27T01:30:00.000Z',
    ],
  )
  t.not(berlin[0]?.state, 'skipped', 'the latest missed fire runs')
  t.same(
    berlin.slice(1, 3).map((r) => r.state),
    ['skipped', 'skipped'],
  )

  // A second instance noticing the same downtime settles nothing twice.
  const again = await buildTestApp(t, { jobs: allTestJobs, databaseUrl, clock: () => now })
  await again.scheduler.reconcile()
  t.equal((await runsOf(app, 'schedule=nightly')).length, nightly.length)
})

t.test('shutdown: jobs finish within the grace period, later ones are interrupted and retried', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false', SHUTDOWN_GRACE_MS: '600' }
  const app = await buildTestApp(t, { jobs: allTestJobs, databaseUrl, env })
  const quick = (
    await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 300 } } })
  ).json()
  const slow = (
    await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 5000 } } })
  ).json()
  await eventually(async () =>
    (await app.inject(`/runs/${slow.id}`)).json().state === 'running' ? true : undefined,
  )
  const closing = Date.now()
  await app.close()
  t.ok(Date.now() - closing < 3000, 'close waited for the grace period, not for the slow job')
  const reader = await buildTestApp(t, { jobs: [], databaseUrl, env: { SCHEDULER_ENABLED: 'false' } })
  t.equal((await reader.inject(`/runs/${quick.id}`)).json().state, 'succeeded')
  const interrupted = (await reader.inject(`/runs/${slow.id}`)).json()
  t.equal(interrupted.state, 'failed')
  t.equal(interrupted.error.code, 'interrupted')
  const [retry] = await runsOf(reader, 'trigger=retry')
  t.match(
    retry,
    { state: 'queued', retryOf: slow.id, attempt: 2, maxAttempts: 2 },
    'queued for whoever runs next',
  )
})

t.test('prune-runs deletes old finished runs, keeps 100 per schedule and anything unfinished', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', RUNS_RETENTION_DAYS: '30' } })
  await app.sql`
    insert into job_runs (job, schedule, trigger, state, args, scheduled_for, queued_at, finished_at)
    select 'cache-clear', 'nightly', 'schedule', 'succeeded', '{}',
           now() - (200 - i) * interval '1 day', now() - (200 - i) * interval '1 day', now() - (200 - i) * interval '1 day'
    from generate_series(1, 150) i`
  await app.sql`
    insert into job_runs (job, trigger, state, args, queued_at, finished_at)
    select 'cache-clear', 'manual', 'failed', '{}', now() - interval '40 days', now() - interval '40 days'
    from generate_series(1, 30)`
  await app.sql`
    insert into job_runs (job, trigger, state, args, queued_at, finished_at)
    select 'cache-clear', 'manual', 'succeeded', '{}', now() - interval '2 days', now() - interval '2 days'
    from generate_series(1, 5)`
  await app.sql`
    insert into job_runs (job, trigger, state, args, queued_at, started_at, heartbeat_at, instance)
    values ('cache-clear', 'manual', 'running', '{}', now() - interval '90 days', now(), now(), 'elsewhere')`
  const run = (
    await app.inject({ method: 'POST', url: '/jobs/prune-runs/runs', payload: { args: { batchSize: 7 } } })
  ).json()
  const done = await eventually(async () => {
    const r = (await app.inject(`/runs/${run.id}`)).json()
    return r.state === 'succeeded' ? r : undefined
  })
  t.equal(done.result.deleted, 50 + 30, '50 old nightly runs beyond the newest 100, and 30 old manual runs')
  const counts = await app.sql`
    select count(*) filter (where schedule = 'nightly')::int as nightly,
           count(*) filter (where schedule is null and state <> 'running' and job = 'cache-clear')::int as manual,
           count(*) filter (where state = 'running')::int as running
    from job_runs`
  t.same(counts[0], { nightly: 100, manual: 5, running: 1 })
})
