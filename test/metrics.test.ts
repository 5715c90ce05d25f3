// GET /metrics: what it reports, that cluster counts agree across instances while durations are per
// process, METRICS_TOKEN, and that a scrape reads no whole table at 200,000 runs.
import { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t from 'tap'
import { jobs as registeredJobs } from '../src/app.js'
import type { Run } from '../src/engine/run-store.js'
import type { Runner } from '../src/engine/runner.js'
import { createScheduleHealth } from '../src/engine/schedule-health.js'
import { finalFailures } from '../src/monitoring/alerts.js'
import { createMetrics } from '../src/monitoring/metrics.js'
import { tokenMatches } from '../src/monitoring/routes/metrics.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

const ENV = { SCHEDULER_ENABLED: 'false', RUN_POLL_MS: '100' }

/** name{labels} → value, from the exposition text. */
function parse(text: string): Map<string, number> {
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    values.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return values
}

async function scrape(app: FastifyInstance): Promise<Map<string, number>> {
  const res = await app.inject('/metrics')
  if (res.statusCode !== 200) throw new Error(`GET /metrics: ${res.statusCode} ${res.body}`)
  return parse(res.body)
}

async function runToEnd(app: FastifyInstance, job: string, args = {}): Promise<Run> {
  const run = (await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })).json()
  return await eventually(async () => {
    const now = (await app.inject(`/runs/${run.id}`)).json()
    return ['succeeded', 'failed', 'cancelled'].includes(now.state) ? now : undefined
  }, 15_000)
}

t.test('what a scrape reports', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: ENV })
  const res = await app.inject({ url: '/metrics', headers: { authorization: '' } })
  t.equal(res.statusCode, 200, 'open without METRICS_TOKEN')
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /# TYPE steward_runs_total counter/)
  t.match(res.body, /process_cpu_user_seconds_total/, 'default process metrics')
  t.match(res.body, /nodejs_eventloop_lag_seconds/)

  await runToEnd(app, 'sleeper', { ms: 20 })
  await runToEnd(app, 'sleeper', { ms: 20 })
  await runToEnd(app, 'boom')
  const slow = (
    await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 60_000 } } })
  ).json()
  await eventually(
    async () => ((await app.inject(`/runs/${slow.id}`)).json().state === 'running' ? true : undefined),
    15_000,
  )
  // A scheduled success and a newest backup, as any instance would have recorded them.
  await app.sql`
    insert into job_runs (job, schedule, trigger, state, scheduled_for, started_at, finished_at)
    values ('cache-clear', 'cache-clear', 'schedule', 'succeeded', '2026-11-27T03:00:00Z',
            '2026-11-27T03:00:00Z', '2026-11-27T03:00:05Z')`
  await app.sql`
    insert into backups (kind, database, file, set_dir, format, bytes, sha256, created_at)
    values ('hourly', 'steward', 'hourly/backup_20261127_000000/steward.sql', 'hourly/backup_20261127_000000',
            'plain', 1000, ${'a'.repeat(64)}, now() - interval '2 hours'),
           ('hourly', 'steward', 'hourly/backup_20261127_010000/steward.sql', 'hourly/backup_20261127_010000',
            'plain', 1234, ${'b'.repeat(64)}, now() - interval '1 hour')`

  const m = await scrape(app)
  t.equal(m.get('steward_runs_total{job="sleeper",state="succeeded"}'), 2)
  t.equal(m.get('steward_runs_total{job="sleeper",state="queued"}'), 3)
  t.equal(m.get('steward_runs_total{job="sleeper",state="running"}'), 3)
  t.equal(m.get('steward_runs_total{job="boom",state="failed"}'), 1)
  t.equal(m.get('steward_runs_running{job="sleeper"}'), 1, 'currently running')
  t.equal(m.get('steward_runs_running{job="boom"}'), 0)
  t.equal(m.get('steward_runs_queued{job="sleeper"}'), 0)
  t.equal(m.get('steward_run_duration_seconds_count{job="sleeper"}'), 2)
  t.equal(m.get('steward_run_duration_seconds_count{job="boom"}'), 1)
  t.ok((m.get('steward_run_duration_seconds_sum{job="sleeper"}') ?? 0) >= 0.04, 'durations observed')
  t.equal(
    m.get('steward_schedule_last_success_timestamp_seconds{schedule="cache-clear"}'),
    Date.parse('2026-11-27T03:00:05Z') / 1000,
  )
  t.notOk(
    m.has('steward_schedule_last_success_timestamp_seconds{schedule="backup-daily"}'),
    'never succeeded',
  )
  const schedules = (await app.inject('/schedules')).json().items as { name: string; nextRunAt: string }[]
  for (const s of schedules) {
    t.equal(
      m.get(`steward_schedule_next_fire_timestamp_seconds{schedule="${s.name}"}`),
      Date.parse(s.nextRunAt) / 1000,
      `${s.name}: next fire as GET /schedules says`,
    )
    t.equal(m.get(`steward_schedule_health{schedule="${s.name}",health="ok"}`), 1)
    t.equal(m.get(`steward_schedule_health{schedule="${s.name}",health="late"}`), 0)
  }
  t.equal(m.get('steward_backup_newest_bytes{database="steward"}'), 1234)
  t.equal(m.get('steward_backup_stored_bytes{database="steward"}'), 2234)
  const age = m.get('steward_backup_newest_age_seconds{database="steward"}') ?? 0
  t.ok(age >= 3600 && age < 3600 + 300, `newest backup about an hour old (${age})`)
  t.equal(m.get('steward_metrics_database_up'), 1)
  await app.inject({ method: 'POST', url: `/runs/${slow.id}/cancel` })

  // Totals are counters: pruning history does not lower them; a bulk insert raises them in one go.
  await app.sql`delete from job_runs where job = 'sleeper' and state = 'succeeded'`
  await app.sql`
    insert into job_runs (job, trigger, state) select 'boom', 'manual', 'failed' from generate_series(1, 150)`
  const after = await scrape(app)
  t.equal(after.get('steward_runs_total{job="sleeper",state="succeeded"}'), 2, 'not lowered by pruning')
  t.equal(after.get('steward_runs_total{job="boom",state="failed"}'), 151)
  t.equal(after.get('steward_runs_total{job="sleeper",state="cancelled"}'), 1)
})

t.test('cluster counts agree on every instance; durations are per process', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const a = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { ...ENV, INSTANCE_ID: 'a' } })
  const b = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { ...ENV, INSTANCE_ID: 'b' } })
  const sleeper = await runToEnd(a, 'sleeper')
  await runToEnd(a, 'boom')
  const [ma, mb] = [await scrape(a), await scrape(b)]
  for (const key of [
    'steward_runs_total{job="sleeper",state="succeeded"}',
    'steward_runs_total{job="boom",state="failed"}',
  ]) {
    t.equal(ma.get(key), 1, `a: ${key}`)
    t.equal(mb.get(key), 1, `b: ${key}`)
  }
  // Whichever instance ran it (b's poller may take a run a queued) observed its duration.
  const [ran, other] = sleeper.instance === 'a' ? [ma, mb] : [mb, ma]
  const count = 'steward_run_duration_seconds_count{job="sleeper"}'
  t.equal(ran.get(count), 1, `${sleeper.instance} ran it`)
  t.equal(other.get(count) ?? 0, 0, 'the other did not')
})

t.test('METRICS_TOKEN closes /metrics', async (t) => {
  const token = 'metrics-secret-0123456789'
  const app = await buildTestApp(t, { jobs: testJobs, env: { ...ENV, METRICS_TOKEN: token } })
  const none = await app.inject({ url: '/metrics', headers: { authorization: '' } })
  t.equal(none.statusCode, 401)
  t.match(none.headers['www-authenticate'], /^Bearer/)
  const wrong = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}x` } })
  t.equal(wrong.statusCode, 401)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 401, 'an API token is not the metrics token')
  const right = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}` } })
  t.equal(right.statusCode, 200)
  t.match(right.body, /steward_runs_total/)

  t.ok(tokenMatches(`bearer ${token}`, token), 'scheme is case-insensitive')
  t.notOk(tokenMatches(undefined, token))
  t.notOk(tokenMatches(`Basic ${token}`, token))
  t.notOk(tokenMatches('Bearer ', token))
})

t.test('a scrape (and the alert scan) at 200,000 runs reads no whole table', async (t) => {
  const url = await createTestDatabase(t)
  const setup = await buildTestApp(t, { databaseUrl: url, env: ENV })
  await setup.close()
  // One connection, so this session's statistics can be flushed and read back exactly.
  const sql = postgres(url, { max: 1, transform: postgres.camel, onnotice: () => {} })
  t.teardown(() => sql.end({ timeout: 5 }))
  await sql`
    insert into job_runs (job, schedule, trigger, state, queued_at, started_at, finished_at, scheduled_for)
    select 'cache-clear', s, 'schedule', case when i % 10 = 0 then 'failed' else 'succeeded' end,
           t, t, t + interval '1 second', t
    from generate_series(1, 200000) i,
         lateral (select now() - i * interval '1 minute' as t,
                         (array['cache-clear', 'backup-hourly', 'registry-sync'])[1 + i % 3] as s) x`
  await sql`analyze job_runs`
  const jobs = new Map(registeredJobs.map((j) => [j.name, j]))
  const health = createScheduleHealth(sql, jobs, () => new Date())
  const metrics = createMetrics({
    sql,
    health,
    runner: { events: new EventEmitter() } as unknown as Runner,
    jobs,
    instanceId: 'x',
    log: { warn: () => {} } as never,
  })
  t.teardown(() => metrics.close())
  const scans = async () => {
    await sql`select pg_stat_force_next_flush()`
    await sql`select pg_stat_clear_snapshot()`
    const [row] = await sql<{ seqScan: string; idxScan: string }[]>`
      select seq_scan, idx_scan from pg_stat_user_tables where relname = 'job_runs'`
    return { seq: Number(row?.seqScan), idx: Number(row?.idxScan) }
  }
  const before = await scans()
  const text = await metrics.render()
  // The alert loop's scan for runs that failed for good, over a day (wider than it ever looks).
  const failures = await finalFailures(sql, new Date(Date.now() - 24 * 3600_000))
  t.equal(failures.length, 100, 'a batch of final failures (none alerted yet)')
  const after = await scans()
  t.match(text, /steward_metrics_database_up 1/)
  t.match(text, /steward_runs_total\{job="cache-clear",state="succeeded"\} 180000/)
  t.equal(after.seq - before.seq, 0, 'no sequential scan of job_runs')
  t.ok(after.idx > before.idx, 'index scans only')
  // The control: the counters do move for a query that must read the table.
  await sql`select count(*) from job_runs where args ? 'nothing'`
  t.ok((await scans()).seq - after.seq >= 1, 'a full read is counted (once per parallel worker)')
})

t.test('a scrape while the database cannot answer still serves the process metrics', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: ENV })
  await app.sql`alter table job_run_totals rename to job_run_totals_away`
  const down = await scrape(app)
  t.equal(down.get('steward_metrics_database_up'), 0)
  t.notOk(
    [...down.keys()].some((k) => k.startsWith('steward_schedule_')),
    'no stale cluster values',
  )
  t.ok(
    [...down.keys()].some((k) => k.startsWith('process_')),
    'process metrics still there',
  )
  await app.sql`alter table job_run_totals_away rename to job_run_totals`
  const up = await scrape(app)
  t.equal(up.get('steward_metrics_database_up'), 1)
  t.ok([...up.keys()].some((k) => k.startsWith('steward_schedule_health')))
})

t.test(
  'backup metrics: newest database file, last passed restore check, anomalies, uploads waiting',
  async (t) => {
    const app = await buildTestApp(t, { jobs: testJobs, env: ENV })
    const row = (set: string, file: string, fields: Record<string, unknown>) => ({
      kind: 'hourly',
      scope: 'database',
      database: 'shop',
      file: `hourly/${set}/${file}`,
      setDir: `hourly/${set}`,
      format: 'plain',
      sha256: 'c'.repeat(64),
      ...fields,
    })
    const verified = new Date('2026-11-28T06:00:12.345Z')
    const okResult = { ok: true, checksum: 'ok', tables: 3, rows: 10, durationMs: 50 }
    const rows = [
      row('backup_20261128_050000', 'shop.sql', {
        bytes: 1000,
        verifiedAt: verified,
        verifyResult: app.sql.json(okResult),
        remoteState: 'uploaded',
        remoteKey: 'k1',
      }),
      row('backup_20261128_050000', 'globals.sql', {
        scope: 'globals',
        bytes: 50,
        remoteState: 'pending',
        remoteKey: 'k2',
      }),
      row('backup_20261128_060000', 'shop.sql', {
        bytes: 300,
        anomaly: app.sql.json({ reason: 'smaller', bytes: 300, medianBytes: 1000 }),
        verifiedAt: new Date(),
        verifyResult: app.sql.json({ ok: false, checksum: 'mismatch', durationMs: 5 }),
      }),
      row('backup_20261128_060000', 'globals.sql', { scope: 'globals', bytes: 60 }),
      row('backup_20261128_060000', 'other.sql', {
        database: 'other',
        bytes: 70,
        remoteState: 'failed',
        remoteKey: 'k3',
      }),
    ]
    for (const r of rows) await app.sql`insert into backups ${app.sql(r as never)}`

    const m = await scrape(app)
    t.equal(m.get('steward_backup_newest_bytes{database="shop"}'), 300, 'the newest dump, not the roles file')
    t.equal(m.get('steward_backup_newest_bytes{database="other"}'), 70)
    t.equal(m.get('steward_backup_stored_bytes{database="shop"}'), 1410, 'every file counts in storage')
    t.equal(
      m.get('steward_backup_last_verified_timestamp_seconds{database="shop"}'),
      verified.getTime() / 1000,
      'the newest check that passed; a failed one later does not count',
    )
    t.notOk(m.has('steward_backup_last_verified_timestamp_seconds{database="other"}'), 'never checked')
    t.equal(m.get('steward_backup_anomalies{database="shop"}'), 1)
    t.equal(m.get('steward_backup_anomalies{database="other"}'), 0)
    t.equal(m.get('steward_backup_upload_pending{database="shop"}'), 1, 'the pending roles file')
    t.equal(m.get('steward_backup_upload_pending{database="other"}'), 1, 'a failed upload waits too')

    await app.sql`alter table backups rename to backups_away`
    const down = await scrape(app)
    t.equal(down.get('steward_metrics_database_up'), 0)
    t.notOk(
      [...down.keys()].some((k) => k.startsWith('steward_backup_')),
      'no stale backup values',
    )
    await app.sql`alter table backups_away rename to backups`
  },
)
