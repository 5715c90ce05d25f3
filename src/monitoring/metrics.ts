// Prometheus metrics, one private prom-client registry per app (tests build several apps in one process).
//
// Several instances share one database and behave as one, so what describes the cluster is read
// from the database at scrape time, with queries whose cost does not grow with job_runs (which may
// hold millions of rows):
// - runs by job and state: `job_run_totals`, a counter table kept by statement triggers on job_runs
//   (migration 0007). Counting job_runs per scrape would read the whole table; counting a recent
//   window would be cheap but is a gauge that jumps as runs leave the window, and no window suits
//   both an hourly and a weekly job. Totals are exact, agree on every instance, cost one upsert per
//   statement that changes runs, and are true counters (pruning does not lower them), so
//   `increase(steward_runs_total{state="failed"}[1h])` works;
// - queued and running: the few unfinished rows, through the (state, id) index;
// - last success, health and next fire per schedule: one scan of schedules, whose rows keep them;
// - backups: the backups table, which retention keeps small. "The newest backup of a database" means
//   its newest database file (scope database): the roles file (globals.sql) of each set is recorded
//   under the database it was dumped through, and counts only in stored bytes and anomalies.
// The run duration histogram is per process, observed from this process's runner: Prometheus sums
// the instances' histograms.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { parseCron } from '../engine/cron.js'
import type { AnyJob } from '../engine/job.js'
import type { Run } from '../engine/run-store.js'
import type { Runner } from '../engine/runner.js'
import { HEALTH_STATES, type ScheduleHealth } from '../engine/schedule-health.js'

export interface MetricsDeps {
  sql: Sql
  health: ScheduleHealth
  runner: Runner
  jobs: Map<string, AnyJob>
  instanceId: string
  log: FastifyBaseLogger
}

const seconds = (d: Date) => d.getTime() / 1000

/** A label value as the exposition format wants it: backslash, double quote and newline escaped. */
const labelValue = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/** The next fire of an expression after `now`, in epoch seconds; null if this version rejects it. */
function nextFire(cron: string, timezone: string, now: Date): number | null {
  try {
    return seconds(parseCron(cron, timezone).next(now))
  } catch {
    return null
  }
}

const LAST_SUCCESS = 'steward_schedule_last_success_timestamp_seconds'
const NEXT_FIRE = 'steward_schedule_next_fire_timestamp_seconds'
const HEALTH = 'steward_schedule_health'

/** One gauge family in exposition text, from its sample lines. */
const family = (name: string, help: string, samples: string) =>
  `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${samples}\n`

/** One database's backups at a glance (bigints arrive as strings). */
interface BackupSummary {
  database: string
  newestBytes: string | null
  newestAt: Date | null
  stored: string
  anomalies: number
  pending: number
  verifiedAt: Date | null
}

export function createMetrics({ sql, health, runner, jobs, instanceId, log }: MetricsDeps) {
  const promRegistry = new Registry()
  // Sampled every 100 ms, not prom-client's 10 ms: a 10 ms timer alone costs an idle process ~0.5 %
  // of a core (the overload guard keeps its own 100 ms lag meter: src/http/protection.ts).
  collectDefaultMetrics({ register: promRegistry, eventLoopMonitoringPrecision: 100 })
  const registers = [promRegistry]

  const runsTotal = new Counter({
    name: 'steward_runs_total',
    help: 'Runs that reached each state, per job, cluster-wide (a run counts once in each state it passed through)',
    labelNames: ['job', 'state'],
    registers,
  })
  const running = new Gauge({
    name: 'steward_runs_running',
    help: 'Runs executing now, cluster-wide',
    labelNames: ['job'],
    registers,
  })
  const queued = new Gauge({
    name: 'steward_runs_queued',
    help: 'Runs waiting to start (retries waiting for their delay included), cluster-wide',
    labelNames: ['job'],
    registers,
  })
  const waiting = new Gauge({
    name: 'steward_runs_waiting',
    help: 'Queued runs that are due but wait for a free slot, by reason (job concurrency, instance capacity), cluster-wide',
    labelNames: ['job', 'reason'],
    registers,
  })
  const duration = new Histogram({
    name: 'steward_run_duration_seconds',
    help: 'Duration of the runs this instance executed',
    labelNames: ['job'],
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600],
    registers,
  })
  const backupBytes = new Gauge({
    name: 'steward_backup_newest_bytes',
    help: 'Size of the newest backup file of each database',
    labelNames: ['database'],
    registers,
  })
  const backupAge = new Gauge({
    name: 'steward_backup_newest_age_seconds',
    help: 'Age of the newest backup file of each database',
    labelNames: ['database'],
    registers,
  })
  const backupStored = new Gauge({
    name: 'steward_backup_stored_bytes',
    help: 'Bytes of all recorded backup files of each database',
    labelNames: ['database'],
    registers,
  })
  const backupVerified = new Gauge({
    name: 'steward_backup_last_verified_timestamp_seconds',
    help:
      'When a backup of each database last passed a restore check (backup-drill or POST /backups/{id}/verify; ' +
      'an encrypted file checked without BACKUP_AGE_IDENTITY_FILE passes on size and sha256 alone)',
    labelNames: ['database'],
    registers,
  })
  const backupAnomalies = new Gauge({
    name: 'steward_backup_anomalies',
    help:
      'Recorded backup files of each database flagged far smaller or larger than their previous sets ' +
      '(a count that falls as retention removes them)',
    labelNames: ['database'],
    registers,
  })
  const uploadPending = new Gauge({
    name: 'steward_backup_upload_pending',
    help: 'Backup files of each database whose off-site copy is not uploaded yet (pending, or failed and to be retried)',
    // Labelled, like the others, so a scrape that cannot read the database leaves it out instead of
    // reporting an unlabelled 0 (prom-client prints a reset gauge without labels as 0).
    labelNames: ['database'],
    registers,
  })
  const databaseUp = new Gauge({
    name: 'steward_metrics_database_up',
    help: '1 when the last scrape could read the cluster-wide metrics from the database',
    registers,
  })
  const clusterMetrics = [runsTotal, running, queued, waiting]
  const backupMetrics = [backupBytes, backupAge, backupStored, backupVerified, backupAnomalies, uploadPending]

  const observe = (run: Run) => {
    // Only runs executed here: another instance's runs (rescued as abandoned, say) are in its own
    // histogram, and their durations are not this process's measurements.
    if (run.instance !== instanceId || run.durationMs === null) return
    if (run.state === 'succeeded' || run.state === 'failed' || run.state === 'cancelled') {
      duration.observe({ job: run.job }, run.durationMs / 1000)
    }
  }
  runner.events.on('run', observe)

  async function readRuns(): Promise<void> {
    const [totals, active] = await Promise.all([
      sql<{ job: string; state: string; total: string }[]>`select job, state, total from job_run_totals`,
      sql<{ job: string; state: string; waitingFor: string | null; n: number }[]>`
        select job, state, waiting_for, count(*)::int as n from job_runs
        where state in ('queued', 'running') group by job, state, waiting_for`,
    ])
    runsTotal.reset()
    for (const row of totals) runsTotal.inc({ job: row.job, state: row.state }, Number(row.total))
    running.reset()
    queued.reset()
    waiting.reset()
    for (const job of jobs.keys()) {
      running.set({ job }, 0)
      queued.set({ job }, 0)
    }
    for (const row of active) {
      if (row.state === 'running') running.inc({ job: row.job }, row.n)
      else queued.inc({ job: row.job }, row.n)
      if (row.state === 'queued' && row.waitingFor)
        waiting.set({ job: row.job, reason: row.waitingFor }, row.n)
    }
  }

  /**
   * The per-schedule metrics, as exposition text written here: with 10,000 schedules, setting
   * 40,000 labelled values through prom-client took most of a 600 ms scrape.
   */
  async function readSchedules(): Promise<string> {
    const now = health.clock()
    let success = ''
    let states = ''
    let next = ''
    for (const line of await health.overview(now)) {
      const schedule = `{schedule="${labelValue(line.name)}"`
      if (line.lastSuccessAt !== null) success += `${LAST_SUCCESS}${schedule}} ${line.lastSuccessAt}\n`
      for (const state of HEALTH_STATES)
        states += `${HEALTH}${schedule},health="${state}"} ${line.health === state ? 1 : 0}\n`
      if (!line.firing) continue
      // Not stored yet (no scheduler has run since it changed): computed from its expression.
      const at = line.nextFireAt ?? nextFire(line.cron ?? '', line.timezone ?? 'UTC', now)
      if (at !== null) next += `${NEXT_FIRE}${schedule}} ${at}\n`
    }
    return (
      family(
        LAST_SUCCESS,
        'When the newest successful run of each schedule finished (absent: never)',
        success,
      ) +
      family(NEXT_FIRE, 'Next fire time of each enabled schedule', next) +
      family(
        HEALTH,
        'Health of each schedule: 1 for its current state (ok, late or failing), 0 for the others',
        states,
      )
    )
  }

  async function readBackups(): Promise<void> {
    const rows = await sql<BackupSummary[]>`
      select database,
             (array_agg(bytes order by id desc) filter (where scope = 'database'))[1] as newest_bytes,
             (array_agg(created_at order by id desc) filter (where scope = 'database'))[1] as newest_at,
             sum(bytes) as stored,
             count(*) filter (where anomaly is not null)::int as anomalies,
             count(*) filter (where remote_state in ('pending', 'failed'))::int as pending,
             max(verified_at) filter (where scope = 'database' and verify_result->>'ok' = 'true') as verified_at
      from backups group by database`
    for (const metric of backupMetrics) metric.reset()
    const now = Date.now()
    for (const row of rows) {
      const database = { database: row.database }
      if (row.newestBytes !== null && row.newestAt !== null) {
        backupBytes.set(database, Number(row.newestBytes))
        backupAge.set(database, Math.max(0, (now - row.newestAt.getTime()) / 1000))
      }
      backupStored.set(database, Number(row.stored))
      backupAnomalies.set(database, row.anomalies)
      uploadPending.set(database, row.pending)
      if (row.verifiedAt) backupVerified.set(database, seconds(row.verifiedAt))
    }
  }

  async function renderNow(): Promise<string> {
    // allSettled: a failed read must not leave the others writing after the reset below.
    const results = await Promise.allSettled([readRuns(), readSchedules(), readBackups()])
    const failure = results.find((r) => r.status === 'rejected')
    if (failure) {
      log.warn({ err: failure.reason }, 'metrics: could not read cluster-wide values from the database')
      for (const metric of [...clusterMetrics, ...backupMetrics]) metric.reset()
    }
    databaseUp.set(failure ? 0 : 1)
    const perSchedule = !failure && results[1].status === 'fulfilled' ? results[1].value : ''
    return `${await promRegistry.metrics()}${perSchedule}`
  }

  /** The computation in flight, if any: every scrape that arrives meanwhile is answered by it. */
  let rendering: Promise<string> | undefined

  return {
    promRegistry,
    contentType: promRegistry.contentType,

    /**
     * The exposition text; cluster-wide values are read now, and left out if the database is down.
     * Single-flight: scrapes that arrive while one is computed share its text, so however many come
     * at once, at most one set of queries runs (each resets and refills the same metrics, too);
     * the next computation starts once this one has settled.
     */
    render(): Promise<string> {
      rendering ??= renderNow().finally(() => {
        rendering = undefined
      })
      return rendering
    },

    close(): void {
      runner.events.off('run', observe)
      promRegistry.clear()
    },
  }
}

export type Metrics = ReturnType<typeof createMetrics>
