// Schedule health and webhook alerts, against a real receiving HTTP server: final failures only,
// retries with backoff, once per incident across instances, late and recovered, a hung receiver
// that blocks nothing, a loop that survives database errors.
import fs from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { Type } from 'typebox'
import { COLUMN_CASE, freePort, startEmbeddedPostgres } from '../src/db/embedded.js'
import { type AnyJob, defineJob } from '../src/engine/job.js'
import type { Run } from '../src/engine/run-store.js'
import { createScheduleHealth, cronIntervalMs } from '../src/engine/schedule-health.js'
import { boom, flaky, sleeper, testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually, TEST_ADMIN_TOKEN } from './helper.js'
import { type Received, startReceiver } from './support/webhook-receiver.js'

const FAST = { ALERT_CHECK_MS: '100', ALERT_RETRY_BASE_MS: '100', RUN_POLL_MS: '100' }
const jobs = [...testJobs, flaky] as AnyJob[]

const ofType = (list: Received[], type: string) => list.filter((r) => r.body.type === type)

async function finished(app: { inject: (url: string) => Promise<{ json(): Run }> }, id: number) {
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json()
      return ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined
    },
    10_000,
    `run ${id} to finish`,
  )
}

t.test('schedule health: the rule, judged in SQL over the columns schedules keep', async (t) => {
  const now = new Date('2026-11-28T12:00:00Z')
  const sql = postgres(await createTestDatabase(t), { max: 1, onnotice: () => {}, transform: COLUMN_CASE })
  t.teardown(() => sql.end())
  const health = createScheduleHealth(
    sql,
    new Map([['sleeper', { ...sleeper, timeoutMs: 60_000 } as AnyJob]]),
    () => now,
  )
  const hoursAgo = (h: number) => new Date(now.getTime() - h * 3600_000)

  t.equal(cronIntervalMs('0 * * * *', 'UTC', now), 3600_000, 'hourly: one hour')
  t.equal(cronIntervalMs('0 0 1 * 1', 'UTC', now), 7 * 86400_000, 'uneven gaps: the widest')
  t.equal(cronIntervalMs('not a cron', 'UTC', now), null)

  let n = 0
  /** Stores an hourly schedule with the given state and judges it at `now`. */
  async function judge(state: {
    updatedAt: Date
    success?: [hoursAgo: number, id: number]
    failureId?: number
    enabled?: boolean
    job?: string
  }) {
    const name = `s${++n}`
    await sql`
      insert into schedules (name, job, cron, timezone, enabled, updated_at, interval_ms,
                             last_success_at, last_success_id, last_failure_id)
      values (${name}, ${state.job ?? 'sleeper'}, '0 * * * *', 'UTC', ${state.enabled ?? true}, ${state.updatedAt},
              ${3600_000}, ${state.success ? hoursAgo(state.success[0]) : null}, ${state.success?.[1] ?? null},
              ${state.failureId ?? null})`
    return (await health.evaluate({ names: [name] })).get(name)
  }

  const fresh = await judge({ updatedAt: now })
  t.equal(fresh?.health, 'ok', 'just created, never ran: ok')
  t.equal(fresh?.allowanceMs, 2 * 3600_000 + 60_000)
  const edited3h = { updatedAt: hoursAgo(3) }
  t.equal((await judge(edited3h))?.health, 'late', 'never succeeded in 3 h: late')
  t.equal((await judge({ ...edited3h, success: [1, 10] }))?.health, 'ok', 'succeeded an hour ago')
  t.equal((await judge({ ...edited3h, success: [2.05, 10] }))?.health, 'late', 'past 2 h + timeout')
  t.equal((await judge({ ...edited3h, success: [2, 10] }))?.health, 'ok', 'within 2 h + timeout')
  t.equal(
    (await judge({ ...edited3h, success: [1, 10], failureId: 11 }))?.health,
    'failing',
    'latest outcome failed',
  )
  t.equal(
    (await judge({ ...edited3h, success: [1, 12], failureId: 11 }))?.health,
    'ok',
    'a success after the failure',
  )
  t.equal(
    (await judge({ ...edited3h, success: [5, 10], failureId: 11 }))?.health,
    'late',
    'late wins over failing',
  )
  t.equal((await judge({ ...edited3h, enabled: false }))?.health, 'ok', 'disabled: never late')
  t.equal((await judge({ ...edited3h, job: 'gone' }))?.health, 'ok', 'job not registered: never late')
  const late = await health.evaluate({ only: ['late'] })
  t.same([...late.keys()].sort(), ['s2', 's4', 's8'], 'filtered by health in the query')

  // The outcome columns follow job_runs through a trigger: the newest success and failure win.
  await sql`
    insert into job_runs (job, schedule, trigger, state, args, finished_at) values
      ('sleeper', 's2', 'schedule', 'failed', '{}', ${hoursAgo(0.5)}),
      ('sleeper', 's2', 'schedule', 'succeeded', '{}', ${hoursAgo(0.2)})`
  t.equal(
    (await health.evaluate({ names: ['s2'] })).get('s2')?.health,
    'ok',
    'a run that succeeded since: ok',
  )
  const [queued] = await sql<{ id: string }[]>`
    insert into job_runs (job, schedule, trigger, state, args) values ('sleeper', 's2', 'schedule', 'running', '{}')
    returning id`
  await sql`update job_runs set state = 'failed', finished_at = ${now} where id = ${queued?.id ?? 0}`
  t.equal((await health.evaluate({ names: ['s2'] })).get('s2')?.health, 'failing', 'then a failure: failing')
})

t.test('a run that fails for good is alerted once; attempts with a retry coming are not', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs,
    env: { ...FAST, SCHEDULER_ENABLED: 'false', RETRY_BASE_MS: '400', ALERT_WEBHOOK_URL: receiver.url },
  })
  const run = (await app.inject({ method: 'POST', url: '/jobs/flaky/runs', payload: {} })).json()
  const alert = await eventually(
    async () => ofType(receiver.delivered(), 'run_failed')[0],
    15_000,
    'the alert',
  ).catch(async (err) => {
    const runs =
      await app.sql`select id, state, attempt, run_after, finished_at, error from job_runs order by id`
    const alerts = await app.sql`select * from alerts`
    const seen = receiver.requests.map((r) => [r.status, r.body.incident])
    throw new Error(
      `${err.message}; runs ${JSON.stringify(runs)}; alerts ${JSON.stringify(alerts)}; seen ${JSON.stringify(seen)}`,
    )
  })
  const body = alert.body as { incident: string; run: Run; text: string; instance: string }
  t.equal(body.run.job, 'flaky')
  t.equal(body.run.attempt, 3, 'about the last attempt')
  t.equal(body.run.retryOf, run.id)
  t.equal(body.run.error?.code, 'flaky')
  t.equal(body.incident, `run-failed:${body.run.id}`)
  t.equal(alert.headers['idempotency-key'], body.incident)
  t.equal(alert.headers['content-type'], 'application/json')
  t.match(body.text, /run \d+ of flaky failed after 3 attempt\(s\): flaky: attempt 3 failed/)
  // Attempts 1 and 2 sat failed for ~400 and ~800 ms, several checks each, with a retry coming.
  await new Promise((r) => setTimeout(r, 500))
  t.equal(ofType(receiver.requests, 'run_failed').length, 1, 'one POST')
  const rows = await app.sql`select incident, attempts, sent_at from alerts where kind = 'run_failed'`
  t.equal(rows.length, 1, 'one alert recorded')
  t.equal(rows[0]?.attempts, 1)
  t.ok(rows[0]?.sentAt)

  // A successful run is not alerted.
  const ok = (await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: {} })).json()
  await finished(app, ok.id)
  await new Promise((r) => setTimeout(r, 400))
  t.equal(receiver.requests.length, 1)
})

t.test('a failure the job calls final is alerted at once, with attempts left', async (t) => {
  const doomed = defineJob({
    name: 'doomed',
    description: 'test: fails in a way no retry can fix',
    args: Type.Object({}),
    timeoutMs: 10_000,
    maxAttempts: 3,
    async run() {
      throw Object.assign(new Error('the database does not exist'), { code: 'no_database', retryable: false })
    },
  })
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs: [...jobs, doomed] as AnyJob[],
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url },
  })
  const run = (await app.inject({ method: 'POST', url: '/jobs/doomed/runs', payload: {} })).json()
  // Without the mark it would wait out the 5-minute grace for a retry that never comes.
  const alert = await eventually(
    async () => ofType(receiver.delivered(), 'run_failed')[0],
    15_000,
    'the alert',
  )
  const body = alert.body as { run: Run }
  t.equal(body.run.id, run.id)
  t.equal(body.run.attempt, 1, 'the first attempt, with two left')
  t.same(body.run.error, { code: 'no_database', message: 'the database does not exist', final: true })
  t.same(await app.sql`select id from job_runs where retry_of = ${run.id}`, [], 'no retry was queued')
})

t.test('a receiver that fails first gets the alert again, with backoff, until it takes it', async (t) => {
  const receiver = await startReceiver({ failFirst: 2 })
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs,
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url },
  })
  const run = (await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })).json()
  await eventually(async () => receiver.delivered()[0], 15_000, 'delivery')
  t.same(
    receiver.requests.map((r) => [r.status, r.body.incident]),
    [
      [500, `run-failed:${run.id}`],
      [500, `run-failed:${run.id}`],
      [200, `run-failed:${run.id}`],
    ],
  )
  // The sender records the delivery once the receiver's answer is in.
  const row = await eventually(async () => {
    const [r] = await app.sql`select attempts, sent_at, last_error, gave_up_at from alerts`
    return r?.sentAt ? r : undefined
  })
  t.equal(row.attempts, 3)
  t.equal(row.lastError, null)
  t.equal(row.gaveUpAt, null)
})

t.test('delivery gives up after ALERT_MAX_ATTEMPTS', async (t) => {
  const receiver = await startReceiver({ failFirst: 1000 })
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs,
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_MAX_ATTEMPTS: '2', ALERT_WEBHOOK_URL: receiver.url },
  })
  await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })
  const row = await eventually(async () => {
    const [r] = await app.sql`select attempts, gave_up_at, last_error from alerts`
    return r?.gaveUpAt ? r : undefined
  }, 15_000)
  t.equal(row.attempts, 2)
  t.equal(row.lastError, 'HTTP 500')
  await new Promise((r) => setTimeout(r, 500))
  t.equal(receiver.requests.length, 2, 'no third attempt')
})

t.test('two instances: each incident is sent once', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const databaseUrl = await createTestDatabase(t)
  const env = { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url }
  const a = await buildTestApp(t, { jobs, databaseUrl, env: { ...env, INSTANCE_ID: 'a' } })
  const b = await buildTestApp(t, { jobs, databaseUrl, env: { ...env, INSTANCE_ID: 'b' } })
  const ids: number[] = []
  for (const app of [a, b, a, b, a]) {
    ids.push((await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })).json().id)
  }
  await eventually(
    async () => (receiver.delivered().length >= 5 ? true : undefined),
    20_000,
    '5 alerts',
  ).catch(async (err) => {
    // Say what was there, should this ever time out on a loaded machine.
    const runs = await a.sql`select id, state, instance from job_runs where job = 'boom' order by id`
    const alerts = await a.sql`select incident, attempts, sent_at, last_error from alerts order by id`
    throw new Error(`${err.message}; runs ${JSON.stringify(runs)}; alerts ${JSON.stringify(alerts)}`)
  })
  // Both instances keep checking (every 100 ms) meanwhile.
  await new Promise((r) => setTimeout(r, 800))
  const incidents = receiver.requests.map((r) => r.body.incident).sort()
  t.same(incidents, ids.map((id) => `run-failed:${id}`).sort(), 'each failure exactly once')
  const rows = await a.sql`select sent_at from alerts`
  t.equal(rows.length, 5, 'one row per incident')
  t.ok(
    rows.every((r) => r.sentAt),
    'each recorded as sent',
  )
})

/** Fails while `failing` is true; a schedule on it goes failing, then late, then recovers. */
const toggle = { failing: true }
const toggler = defineJob({
  name: 'toggler',
  description: 'test: fails or succeeds on demand',
  args: Type.Object({}),
  timeoutMs: 1000,
  maxAttempts: 1,
  async run() {
    if (toggle.failing) throw new Error('switched off')
    return { ok: true }
  },
})

t.test('GET /schedules shows failing when the latest finished run failed', async (t) => {
  const app = await buildTestApp(t, { jobs, env: { SCHEDULER_ENABLED: 'false' } })
  // Yearly: it cannot turn late during the test.
  await app.inject({
    method: 'POST',
    url: '/schedules',
    payload: { name: 'yearly', job: 'boom', cron: '0 0 1 1 *', timezone: 'UTC' },
  })
  const health = async () => (await app.inject('/schedules/yearly')).json().health
  const record = (state: string) => app.sql`
    insert into job_runs (job, schedule, trigger, state, started_at, finished_at)
    values ('boom', 'yearly', 'manual', ${state}, now(), now())`
  t.equal(await health(), 'ok')
  await record('failed')
  t.equal(await health(), 'failing')
  await record('cancelled')
  await record('skipped')
  t.equal(await health(), 'failing', 'cancelled and skipped runs do not count')
  await record('succeeded')
  t.equal(await health(), 'ok')
  await record('failed')
  const listed = (await app.inject('/schedules'))
    .json()
    .items.find((s: { name: string }) => s.name === 'yearly')
  t.equal(listed.health, 'failing', 'in the list too')
})

t.test('a schedule turns late (alerted once), then recovers (alerted once)', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs: [sleeper, boom, toggler] as AnyJob[],
    env: { ...FAST, ALERT_WEBHOOK_URL: receiver.url },
  })
  const health = async () => (await app.inject('/schedules/every-second')).json().health
  const created = await app.inject({
    method: 'POST',
    url: '/schedules',
    payload: { name: 'every-second', job: 'toggler', cron: '* * * * * *', timezone: 'UTC' },
  })
  t.equal(created.json().health, 'ok', 'just created: ok')
  // Interval 1 s, timeout 1 s: late 3 s after creation without a success.
  const late = await eventually(async () => ofType(receiver.delivered(), 'schedule_late')[0], 10_000, 'late')
  t.equal(await health(), 'late')
  t.match(late.body, {
    type: 'schedule_late',
    schedule: { name: 'every-second', job: 'toggler', cron: '* * * * * *' },
    health: 'late',
    lastSuccessAt: null,
  })
  const list = (await app.inject('/schedules')).json().items
  t.equal(list.find((s: { name: string }) => s.name === 'every-second').health, 'late', 'in the list too')

  toggle.failing = false
  const recovered = await eventually(
    async () => ofType(receiver.delivered(), 'schedule_recovered')[0],
    10_000,
    'recovery',
  )
  t.match(recovered.body, { health: 'ok', lateIncident: late.body.incident })
  t.ok(recovered.body.lastSuccessAt)
  await new Promise((r) => setTimeout(r, 500))
  t.equal(ofType(receiver.requests, 'schedule_late').length, 1, 'late alerted once')
  t.equal(ofType(receiver.requests, 'schedule_recovered').length, 1, 'recovery alerted once')
  // Every failed scheduled run was final (1 attempt), so each is alerted too.
  const failed = await app.sql`select count(*)::int as n from job_runs where state = 'failed'`
  await eventually(
    async () => (ofType(receiver.delivered(), 'run_failed').length === failed[0]?.n ? true : undefined),
    15_000,
  )
  await app.inject({ method: 'PATCH', url: '/schedules/every-second', payload: { enabled: false } })
})

t.test('a receiver that never answers blocks neither runs nor shutdown', async (t) => {
  const receiver = await startReceiver({ hold: true })
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs,
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url },
  })
  const first = (await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })).json()
  await finished(app, first.id)
  await eventually(async () => receiver.requests[0], 10_000, 'the POST to arrive')
  // The alert is in flight and unanswered; runs go on.
  for (const job of ['sleeper', 'boom']) {
    const run = (await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: {} })).json()
    t.ok(['succeeded', 'failed'].includes((await finished(app, run.id)).state), `${job} finished`)
  }
  // Closing aborts the hung request instead of waiting for it.
  await t.resolves(app.close())
})

t.test('the alert loop survives database errors and catches up', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs,
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url },
  })
  // Every step of the loop now fails (no alerts table), tick after tick.
  await app.sql`alter table alerts rename to alerts_away`
  const run = (await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })).json()
  await finished(app, run.id)
  await new Promise((r) => setTimeout(r, 500))
  t.equal(receiver.requests.length, 0)
  await app.sql`alter table alerts_away rename to alerts`
  const alert = await eventually(async () => receiver.delivered()[0], 10_000, 'the alert after recovery')
  t.equal(alert.body.incident, `run-failed:${run.id}`)
})

/**
 * postgres.js 3.4.9 fetches array types on every new connection without awaiting it
 * (connection.js: `return fetchArrayTypes()`), so a connection closed by the outage in that instant
 * rejects a promise nobody holds. That is the library's, not the code under test: such rejections
 * are set aside here (and reported as a comment), anything else still fails the test.
 */
function tolerateTypeFetchRejections(t: Test): void {
  const others = process.listeners('unhandledRejection')
  process.removeAllListeners('unhandledRejection')
  const filter = (reason: unknown, promise: Promise<unknown>) => {
    const stack = String((reason as Error)?.stack ?? '')
    if (
      (reason as { code?: string })?.code === 'CONNECTION_CLOSED' &&
      stack.includes('postgres/src/connection.js')
    ) {
      t.comment(`postgres.js type fetch rejected unhandled: ${(reason as Error).message}`)
      return
    }
    for (const listener of others) listener(reason, promise)
  }
  process.on('unhandledRejection', filter)
  t.teardown(() => {
    process.off('unhandledRejection', filter)
    for (const listener of others) process.on('unhandledRejection', listener)
  })
}

t.test('a real database outage: the alert loop and the run-event relay carry on', async (t) => {
  tolerateTypeFetchRejections(t)
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-alerts-outage-'))
  const port = await freePort()
  let db = await startEmbeddedPostgres({ dataDir, port })
  t.teardown(async () => {
    await db.stop()
    await fs.rm(dataDir, { recursive: true, force: true })
  })
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs,
    databaseUrl: db.url,
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  let events = ''
  const request = http.get(
    {
      host: '127.0.0.1',
      port: (app.server.address() as AddressInfo).port,
      path: '/events?job=boom',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    },
    (res) => res.setEncoding('utf8').on('data', (chunk: string) => (events += chunk)),
  )
  request.on('error', () => {})
  t.teardown(() => request.destroy())
  await eventually(async () => (app.runEvents.subscribers() === 1 ? true : undefined))

  await db.stop()
  // Ticks every 100 ms, each failing to reach the database.
  await new Promise((r) => setTimeout(r, 500))
  db = await startEmbeddedPostgres({ dataDir, port })
  const run = await eventually(
    async () => {
      const res = await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })
      return res.statusCode === 202 ? (res.json() as Run) : undefined
    },
    20_000,
    'the database to be back',
  )
  // (A trigger answered 503 while the database came back may have queued a run too.)
  await eventually(
    async () => receiver.delivered().find((r) => r.body.incident === `run-failed:${run.id}`),
    20_000,
    'the alert',
  )
  t.pass('alerted after the outage')
  // postgres.js re-LISTENs with its reconnect backoff (up to 20 s after an outage); runs finished
  // before that are not relayed, and the stream says so with a gap event. Later ones are.
  let last = run.id
  await eventually(
    async () => {
      if (events.includes('event: gap\n') && events.includes(`"id":${last},"job":"boom"`)) return true
      last = (await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })).json().id
      await new Promise((r) => setTimeout(r, 500))
      return undefined
    },
    45_000,
    'a gap event, then runs on the event stream again',
  )
  t.ok(events.indexOf('event: gap\n') < events.indexOf(`"id":${last},"job":"boom"`), 'the gap came first')
})

t.test('a failure whose error code is drill_failed is alerted as drill_failed', async (t) => {
  const drill = defineJob({
    name: 'drill',
    description: 'test: a restore drill that finds a broken backup',
    args: Type.Object({}),
    timeoutMs: 10_000,
    maxAttempts: 1,
    async run() {
      throw Object.assign(new Error('1 of 1 file(s) did not pass: shop: checksum_mismatch'), {
        code: 'drill_failed',
        retryable: false,
      })
    },
  })
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const app = await buildTestApp(t, {
    jobs: [...jobs, drill] as AnyJob[],
    env: { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url },
  })
  const run = (await app.inject({ method: 'POST', url: '/jobs/drill/runs', payload: {} })).json()
  await finished(app, run.id)
  const boomRun = (await app.inject({ method: 'POST', url: '/jobs/boom/runs', payload: {} })).json()
  const alert = await eventually(async () => ofType(receiver.delivered(), 'drill_failed')[0], 15_000, 'alert')
  t.match(alert.body, {
    incident: `run-failed:${run.id}`,
    text: `Steward: restore drill (run ${run.id} of drill) failed: 1 of 1 file(s) did not pass: shop`,
    run: { id: run.id, error: { code: 'drill_failed' } },
  })
  await eventually(async () => ofType(receiver.delivered(), 'run_failed')[0], 15_000, 'the other alert')
  const kinds = await app.sql`select kind, run_id::int from alerts order by id`
  t.same(
    kinds,
    [
      { kind: 'drill_failed', runId: run.id },
      { kind: 'run_failed', runId: boomRun.id },
    ],
    'other codes stay run_failed',
  )
})

t.test('a backup size anomaly is alerted once, by one instance; old ones are not replayed', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const databaseUrl = await createTestDatabase(t)
  const env = { ...FAST, SCHEDULER_ENABLED: 'false', ALERT_WEBHOOK_URL: receiver.url }
  const a = await buildTestApp(t, { jobs, databaseUrl, env: { ...env, INSTANCE_ID: 'a' } })
  type Anomaly = { reason: string; bytes: number; medianBytes: number }
  const insert = async (n: number, anomaly: Anomaly | null, age = '0') => {
    const set = `hourly/backup_20261127_0${n}0000`
    const [row] = await a.sql<{ id: number }[]>`
      insert into backups (kind, database, file, set_dir, format, bytes, sha256, anomaly, created_at)
      values ('hourly', 'shop', ${`${set}/shop.sql`}, ${set}, 'plain', 400, ${'a'.repeat(64)},
              ${anomaly === null ? null : a.sql.json(anomaly)}, now() - ${age}::interval)
      returning id::int`
    return row?.id as number
  }
  await insert(1, { reason: 'smaller', bytes: 400, medianBytes: 1000 }, '7 hours')
  await insert(2, null)
  const flagged = await insert(3, { reason: 'smaller', bytes: 400, medianBytes: 1000 })
  await buildTestApp(t, { jobs, databaseUrl, env: { ...env, INSTANCE_ID: 'b' } })
  const alert = await eventually(
    async () => ofType(receiver.delivered(), 'backup_anomaly')[0],
    15_000,
    'alert',
  )
  t.match(alert.body, {
    incident: `backup-anomaly:${flagged}`,
    text: `Steward: backup ${flagged} (shop, hourly/backup_20261127_030000/shop.sql) is 40 % of the median of its previous sets (400 bytes; median 1000 bytes)`,
    backup: { id: flagged, kind: 'hourly', scope: 'database', database: 'shop', bytes: 400, runId: null },
    anomaly: { reason: 'smaller', bytes: 400, medianBytes: 1000 },
  })
  // One flagged later is found by the next scans (their window follows the previous one).
  const larger = await insert(4, { reason: 'larger', bytes: 4 * 1024 * 1024, medianBytes: 1024 * 1024 })
  const second = await eventually(
    async () => receiver.delivered().find((r) => r.body.incident === `backup-anomaly:${larger}`),
    15_000,
    'the second alert',
  )
  t.match(second.body.text, /is 400 % of the median of its previous sets \(4\.0 MiB; median 1\.0 MiB\)/)
  await new Promise((r) => setTimeout(r, 500))
  t.same(
    ofType(receiver.requests, 'backup_anomaly').map((r) => r.body.incident),
    [`backup-anomaly:${flagged}`, `backup-anomaly:${larger}`],
    'once each across both instances; the 7 hour old one is not replayed',
  )
})
