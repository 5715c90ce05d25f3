// Alerts: a JSON POST to ALERT_WEBHOOK_URL when a run fails for good, when a schedule turns late and
// when it recovers. A loop on every instance (when configured) records incidents in the `alerts`
// table and delivers them:
// - once per incident: each incident has a unique key (`run-failed:<id>`, `schedule-late:<name>:<
//   since>`, `recovered:<late key>`), so the instance that notices first records it and the others'
//   inserts do nothing; a recovery is recorded by the conditional update that resolves the open late
//   incident, which only one instance can win;
// - one sender at a time: delivery (alert-delivery.ts) claims a due row with `for update skip
//   locked` and leases it, so a crashed sender's alert is retried by anyone after the lease.
//   Receivers may still see a repeat if a sender dies between the receiver's 200 and recording it:
//   each POST carries `Idempotency-Key: <incident>`;
// - retried with backoff (ALERT_RETRY_BASE_MS × 2^(n−1), at most 10 min, ALERT_MAX_ATTEMPTS tries);
// - never in a run's way: runs only write job_runs; this loop finds final failures there later.
// The loop survives errors and database outages: each step catches, logs and waits for the next tick.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../config.js'
import { type Run, toRun } from '../engine/run-store.js'
import type { Schedule, ScheduleStore } from '../engine/schedule-store.js'
import type { JsonValue } from '../lib/json.js'
import { createAlertDelivery } from './alert-delivery.js'
import type { HealthReport, ScheduleHealth } from './schedule-health.js'

export type AlertKind = 'run_failed' | 'schedule_late' | 'schedule_recovered'

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
           or r.finished_at < now() - ${RETRY_GRACE}::interval)
      and not exists (select 1 from job_runs n where n.retry_of = coalesce(r.retry_of, r.id) and n.attempt > r.attempt)
      and not exists (select 1 from alerts a where a.incident = 'run-failed:' || r.id)
    order by r.id limit 100`
  return rows.map((row) => toRun(row as never))
}

const describeSchedule = (s: Schedule) => ({ name: s.name, job: s.job, cron: s.cron, timezone: s.timezone })

export function createAlerts({ sql, schedules, health, config, log }: AlertsDeps) {
  const url = config.alertWebhookUrl
  const timers = new Set<NodeJS.Timeout>()
  const aborter = new AbortController()
  let ticking: Promise<void> | undefined
  let stopped = true
  let scannedFrom: Date | undefined
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

  async function scanFailures(): Promise<void> {
    const started = new Date()
    const since = scannedFrom
      ? new Date(scannedFrom.getTime() - SCAN_OVERLAP_MS)
      : new Date(Date.now() - LOOKBACK_MS)
    for (const run of await finalFailures(sql, since)) {
      const where = run.schedule ? ` (schedule ${run.schedule})` : ''
      const why = run.error ? `${run.error.code}: ${run.error.message}` : 'no error recorded'
      await record(
        'run_failed',
        `run-failed:${run.id}`,
        {
          text: `Steward: run ${run.id} of ${run.job}${where} failed after ${run.attempt} attempt(s): ${why}`,
          run,
        },
        { schedule: run.schedule ?? undefined, runId: run.id },
      )
    }
    scannedFrom = started
  }

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

  /** Resolves open late incidents of schedules no longer late (deleted ones included). */
  async function resolveRecovered(list: Schedule[], reports: Map<string, HealthReport>): Promise<void> {
    const late = list.filter((s) => reports.get(s.name)?.health === 'late').map((s) => s.name)
    const resolved = await sql<{ incident: string; schedule: string }[]>`
      update alerts set resolved_at = now()
      where kind = 'schedule_late' and resolved_at is null and schedule <> all(${late}::text[])
      returning incident, schedule`
    for (const { incident, schedule: name } of resolved) {
      const schedule = list.find((s) => s.name === name)
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

  async function checkSchedules(): Promise<void> {
    const list = await schedules.list()
    const reports = await health.evaluate(list)
    for (const schedule of list) {
      const report = reports.get(schedule.name)
      if (report?.health === 'late') await openLate(schedule, report)
    }
    await resolveRecovered(list, reports)
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
