// Alerts: a JSON POST to ALERT_WEBHOOK_URL when a run fails for good (as drill_failed when its error
// code is drill_failed, a failed restore drill), when a schedule turns late and when it recovers, and
// when a backup is flagged with a size anomaly. A loop on every instance (when configured) records
// incidents in the `alerts` table and delivers them:
// - once per incident: each incident has a unique key (`run-failed:<id>`, `schedule-late:<name>:<
//   since>`, `recovered:<late key>`, `backup-anomaly:<backup id>`), so the instance that notices first
//   records it and the others' inserts do nothing; a recovery is recorded by the conditional update
//   that resolves the open late incident, which only one instance can win;
// - generic: what a failure means comes from its run's error code (ALERT_KIND_BY_ERROR_CODE), and
//   anomalies from the backups table's `anomaly` column, so monitoring imports no feature;
// - one sender at a time: delivery (alert-delivery.ts) claims a due row with `for update skip
//   locked` and leases it, so a crashed sender's alert is retried by anyone after the lease.
//   Receivers may still see a repeat if a sender dies between the receiver's 200 and recording it:
//   each POST carries `Idempotency-Key: <incident>`;
// - retried with backoff (ALERT_RETRY_BASE_MS × 2^(n−1), at most 10 min, ALERT_MAX_ATTEMPTS tries);
// - never in a run's way: runs only write job_runs (and backups); this loop finds them there later.
// The loop survives errors and database outages: each step catches, logs and waits for the next tick.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../config.js'
import { type Run, toRun } from '../engine/run-store.js'
import type { HealthReport, ScheduleHealth } from '../engine/schedule-health.js'
import type { Schedule, ScheduleStore } from '../engine/schedule-store.js'
import { NotFound } from '../lib/errors.js'
import type { JsonValue } from '../lib/json.js'
import { createAlertDelivery } from './alert-delivery.js'

export type AlertKind =
  | 'run_failed'
  | 'schedule_late'
  | 'schedule_recovered'
  | 'drill_failed'
  | 'backup_anomaly'

/** A final failure with one of these error codes is its own kind of alert rather than run_failed. */
const ALERT_KIND_BY_ERROR_CODE: Readonly<Record<string, AlertKind>> = { drill_failed: 'drill_failed' }

export interface AlertsDeps {
  sql: Sql
  schedules: ScheduleStore
  health: ScheduleHealth
  config: Config
  log: FastifyBaseLogger
}

/**
 * The first scan after start looks back this far (failures while no alerting instance ran), not
 * further, so turning alerts on does not replay days of history; later scans overlap the previous.
 */
const LOOKBACK_MS = 6 * 3600_000
/** A failed run that should have been retried but was not within this time is final too. */
const RETRY_GRACE = '5 minutes'
const SCAN_OVERLAP_MS = 15 * 60_000
/** Deliveries per tick, so one tick cannot run for ever while a backlog drains. */
const DELIVERY_BATCH = 20

/**
 * A failed run no retry will follow: the runner retries while attempts remain, and always retries
 * an interrupted run (see retryIfAllowed in runner.ts); a failure whose retry never got queued
 * (unknown job, database lost at that moment) counts once RETRY_GRACE has passed.
 */
export async function finalFailures(sql: Sql, since: Date): Promise<Run[]> {
  const rows = await sql`
    select r.* from job_runs r
    where r.state = 'failed' and r.finished_at > ${since}
      and ((r.attempt >= r.max_attempts and coalesce(r.error->>'code', '') <> 'interrupted')
           or r.error->>'final' = 'true'
           or r.finished_at < now() - ${RETRY_GRACE}::interval)
      and not exists (select 1 from job_runs n where n.retry_of = coalesce(r.retry_of, r.id) and n.attempt > r.attempt)
      and not exists (select 1 from alerts a where a.incident = 'run-failed:' || r.id)
    order by r.id limit 100`
  return rows.map((row) => toRun(row as never))
}

/** A backup flagged far smaller or larger than its predecessors (the backups table's `anomaly`). */
export interface AnomalousBackup {
  id: number
  kind: string
  scope: string
  database: string
  file: string
  bytes: number
  createdAt: string
  runId: number | null
  schedule: string | null
  anomaly: { reason: string; bytes: number; medianBytes: number }
}

interface AnomalyRow extends Omit<AnomalousBackup, 'id' | 'bytes' | 'createdAt' | 'runId'> {
  id: string
  bytes: string
  createdAt: Date
  runId: string | null
}

/** Backups flagged since `since` that have no alert yet (the backups table is small: retention). */
export async function unalertedAnomalies(sql: Sql, since: Date): Promise<AnomalousBackup[]> {
  const rows = await sql<AnomalyRow[]>`
    select b.id, b.kind, b.scope, b.database, b.file, b.bytes, b.created_at, b.run_id, r.schedule, b.anomaly
    from backups b left join job_runs r on r.id = b.run_id
    where b.anomaly is not null and b.created_at > ${since}
      and not exists (select 1 from alerts a where a.incident = 'backup-anomaly:' || b.id)
    order by b.id limit 100`
  return rows.map((row) => ({
    ...row,
    id: Number(row.id),
    bytes: Number(row.bytes),
    createdAt: row.createdAt.toISOString(),
    runId: row.runId === null ? null : Number(row.runId),
  }))
}

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB']

function size(bytes: number): string {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${UNITS[unit]}`
}

export function anomalyText(b: AnomalousBackup): string {
  const { bytes, medianBytes } = b.anomaly
  const share = medianBytes > 0 ? `${Math.round((bytes / medianBytes) * 100)} % of` : 'larger than'
  const what = b.scope === 'globals' ? `roles of ${b.database}` : b.database
  return (
    `Steward: backup ${b.id} (${what}, ${b.file}) is ${share} the median of its previous sets ` +
    `(${size(bytes)}; median ${size(medianBytes)}): check what changed before relying on it`
  )
}

const describeSchedule = (s: Schedule) => ({ name: s.name, job: s.job, cron: s.cron, timezone: s.timezone })

export function createAlerts({ sql, schedules, health, config, log }: AlertsDeps) {
  const url = config.alertWebhookUrl
  const timers = new Set<NodeJS.Timeout>()
  const aborter = new AbortController()
  let ticking: Promise<void> | undefined
  let stopped = true
  /** Where each scan of new incidents got to (the start of its last successful pass). */
  const scannedFrom = new Map<'failures' | 'anomalies', Date>()
  const delivery = createAlertDelivery({ sql, config, log, signal: aborter.signal, wakeIn })

  async function record(
    kind: AlertKind,
    incident: string,
    payload: Record<string, unknown>,
    refs: { schedule?: string; runId?: number },
  ): Promise<boolean> {
    const body = {
      type: kind,
      incident,
      at: new Date().toISOString(),
      instance: config.instanceId,
      ...payload,
    }
    const rows = await sql`
      insert into alerts (incident, kind, schedule, run_id, payload)
      values (${incident}, ${kind}, ${refs.schedule ?? null}, ${refs.runId ?? null}, ${sql.json(body as JsonValue)})
      on conflict (incident) do nothing
      returning id`
    if (rows.length > 0) log.info({ incident, kind }, 'alert recorded')
    return rows.length > 0
  }

  /** Runs `scan` from where the previous pass of it started (less an overlap), or LOOKBACK_MS ago. */
  async function scanSince(which: 'failures' | 'anomalies', scan: (since: Date) => Promise<void>) {
    const started = new Date()
    const previous = scannedFrom.get(which)
    await scan(previous ? new Date(previous.getTime() - SCAN_OVERLAP_MS) : new Date(Date.now() - LOOKBACK_MS))
    scannedFrom.set(which, started)
  }

  async function recordFailure(run: Run): Promise<void> {
    const where = run.schedule ? ` (schedule ${run.schedule})` : ''
    const why = run.error ? `${run.error.code}: ${run.error.message}` : 'no error recorded'
    const kind = (run.error && ALERT_KIND_BY_ERROR_CODE[run.error.code]) ?? 'run_failed'
    const text =
      kind === 'drill_failed'
        ? `Steward: restore drill (run ${run.id} of ${run.job}${where}) failed: ${run.error?.message}`
        : `Steward: run ${run.id} of ${run.job}${where} failed after ${run.attempt} attempt(s): ${why}`
    await record(
      kind,
      `run-failed:${run.id}`,
      { text, run },
      { schedule: run.schedule ?? undefined, runId: run.id },
    )
  }

  const scanFailures = () =>
    scanSince('failures', async (since) => {
      for (const run of await finalFailures(sql, since)) await recordFailure(run)
    })

  const scanAnomalies = () =>
    scanSince('anomalies', async (since) => {
      for (const backup of await unalertedAnomalies(sql, since)) {
        const { anomaly, ...about } = backup
        await record(
          'backup_anomaly',
          `backup-anomaly:${backup.id}`,
          { text: anomalyText(backup), backup: about, anomaly },
          { schedule: backup.schedule ?? undefined, runId: backup.runId ?? undefined },
        )
      }
    })

  async function openLate(schedule: Schedule, report: HealthReport): Promise<void> {
    const incident = `schedule-late:${schedule.name}:${report.since.toISOString()}`
    const [open] = await sql`
      select 1 from alerts where kind = 'schedule_late' and schedule = ${schedule.name} and resolved_at is null`
    if (open) return
    const lastSuccess = report.lastSuccessAt?.toISOString() ?? 'never'
    await record(
      'schedule_late',
      incident,
      {
        text: `Steward: schedule ${schedule.name} (${schedule.job}) is late: last success ${lastSuccess}`,
        schedule: describeSchedule(schedule),
        health: 'late',
        lastSuccessAt: report.lastSuccessAt?.toISOString() ?? null,
        lateSince: new Date(report.since.getTime() + (report.allowanceMs ?? 0)).toISOString(),
      },
      { schedule: schedule.name },
    )
  }

  /** The schedule, or null when it was deleted meanwhile. */
  const scheduleOrNull = (name: string) =>
    schedules.get(name).catch((err: unknown) => {
      if (err instanceof NotFound) return null
      throw err
    })

  /** Resolves open late incidents of schedules no longer late (deleted ones included). */
  async function resolveRecovered(late: string[]): Promise<void> {
    const resolved = await sql<{ incident: string; schedule: string }[]>`
      update alerts set resolved_at = now()
      where kind = 'schedule_late' and resolved_at is null and schedule <> all(${late}::text[])
      returning incident, schedule`
    if (resolved.length === 0) return
    const reports = await health.evaluate({ names: resolved.map((r) => r.schedule) })
    for (const { incident, schedule: name } of resolved) {
      const schedule = await scheduleOrNull(name)
      const report = reports.get(name)
      const state = schedule ? (report?.health ?? 'ok') : 'deleted'
      await record(
        'schedule_recovered',
        `recovered:${incident}`,
        {
          text: `Steward: schedule ${name} is no longer late (${state})`,
          schedule: schedule ? describeSchedule(schedule) : { name },
          health: state,
          lastSuccessAt: report?.lastSuccessAt?.toISOString() ?? null,
          lateIncident: incident,
        },
        { schedule: name },
      )
    }
  }

  /** Opens an incident for each schedule that became late, and resolves those that recovered. */
  async function checkSchedules(): Promise<void> {
    const late = await health.evaluate({ only: ['late'] })
    const open = await sql<{ schedule: string }[]>`
      select schedule from alerts where kind = 'schedule_late' and resolved_at is null`
    const known = new Set(open.map((row) => row.schedule))
    for (const report of late.values()) {
      if (known.has(report.name)) continue
      const schedule = await scheduleOrNull(report.name)
      if (schedule) await openLate(schedule, report)
    }
    await resolveRecovered([...late.keys()])
  }

  async function deliverDue(): Promise<void> {
    for (let i = 0; i < DELIVERY_BATCH && !stopped; i++) {
      const alert = await delivery.claim()
      if (!alert) return
      await delivery.deliver(alert)
    }
  }

  async function tickOnce(): Promise<void> {
    const steps: [string, () => Promise<void>][] = [
      ['scanning for failed runs', scanFailures],
      ['scanning for backup anomalies', scanAnomalies],
      ['checking schedule health', checkSchedules],
      ['delivering alerts', deliverDue],
    ]
    for (const [what, step] of steps) {
      if (stopped) return
      try {
        await step()
      } catch (err) {
        log.warn({ err }, `alerts: ${what} failed; will retry`)
      }
    }
  }

  /** One tick at a time; a tick requested meanwhile is covered by the next one. */
  function tick(): Promise<void> {
    ticking ??= tickOnce().finally(() => {
      ticking = undefined
    })
    return ticking
  }

  function wakeIn(ms: number): void {
    if (stopped) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      void tick()
    }, ms)
    timer.unref()
    timers.add(timer)
  }

  return {
    enabled: url !== undefined,
    tick,

    start(): void {
      if (!url) return
      stopped = false
      const interval = setInterval(() => void tick(), config.alertCheckMs)
      interval.unref()
      timers.add(interval)
      void tick()
    },

    /** Stops the loop and aborts a delivery in progress (it is retried later, by anyone). */
    async stop(): Promise<void> {
      stopped = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      aborter.abort()
      await ticking
    },
  }
}

export type Alerts = ReturnType<typeof createAlerts>
