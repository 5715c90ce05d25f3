// Schedule health: is each schedule doing its chore? `late` when its last success is older than
// twice its interval plus its job's timeout, `failing` when its latest finished run failed, else
// `ok`. Shown on GET /schedules (and filtered on there), exported as a metric, and watched by the
// alert loop. The rule is one SQL expression over columns the schedules table keeps (interval_ms,
// and the latest outcomes, maintained by a trigger on job_runs), so judging 10,000 schedules is one
// scan and filtering by health can page.
import type { PendingQuery, Row, Sql } from 'postgres'
import { parseCron } from './cron.js'
import type { AnyJob } from './job.js'

export const HEALTH_STATES = ['ok', 'late', 'failing'] as const
export type Health = (typeof HEALTH_STATES)[number]

export interface HealthReport {
  name: string
  health: Health
  /** Since when the schedule has been expected to succeed: its last success, or its last edit. */
  since: Date
  /** How long after `since` it becomes late; null when it is not expected to fire. */
  allowanceMs: number | null
  /** finished_at of the newest succeeded run of the schedule. */
  lastSuccessAt: Date | null
  lastSuccessId: number | null
  lastFailureId: number | null
}

/** How many upcoming gaps are looked at: crons such as "0 0 1 * 1" have uneven gaps. */
const GAPS = 4

/**
 * The schedule's interval: the widest gap between its next few fires. Null when it cannot be
 * computed (a stored expression this version no longer accepts).
 */
export function cronIntervalMs(cron: string, timezone: string, now: Date): number | null {
  // Five evaluations cost ~0.6 ms; thousands of schedules share a few hundred expressions, and an
  // interval computed earlier the same day is as good.
  const key = `${timezone}\n${cron}`
  const day = Math.floor(now.getTime() / 86_400_000)
  const known = intervals.get(key)
  if (known && known.day === day) return known.ms
  const ms = computeInterval(cron, timezone, now)
  if (intervals.size >= INTERVALS_MAX) intervals.delete(intervals.keys().next().value as string)
  intervals.set(key, { day, ms })
  return ms
}

const intervals = new Map<string, { day: number; ms: number | null }>()
const INTERVALS_MAX = 5000

function computeInterval(cron: string, timezone: string, now: Date): number | null {
  try {
    const fires = parseCron(cron, timezone).nextRuns(GAPS + 1, now)
    let widest = 0
    for (let i = 1; i < fires.length; i++) {
      widest = Math.max(widest, (fires[i] as Date).getTime() - (fires[i - 1] as Date).getTime())
    }
    return widest > 0 ? widest : null
  } catch {
    return null
  }
}

/**
 * Joins giving `h.health`, `h.since` and `h.allowance_ms` for the schedules row aliased `s`, at
 * `now`: put it after `from schedules s`. Lateness is counted from the last success or the
 * schedule's last edit, whichever is newer, so a schedule just created (or re-enabled) is not late
 * before it had time to run; a disabled schedule, or one whose job is not registered here, is never
 * late. Runs that were cancelled or skipped say nothing about health.
 */
export function healthOf(sql: Sql, jobs: Map<string, AnyJob>, now: Date): PendingQuery<Row[]> {
  const names = [...jobs.keys()]
  const timeouts = names.map((name) => jobs.get(name)?.timeoutMs ?? 0)
  // late_at (kept by a trigger) is greatest(updated_at, last_success_at) + 2 × interval_ms.
  return sql`
    left join unnest(${names}::text[], ${timeouts}::bigint[]) as j(name, timeout_ms) on j.name = s.job
    cross join lateral (
      select case
               when s.enabled and s.late_at + j.timeout_ms * interval '1 millisecond' < ${now}::timestamptz
                 then 'late'
               when coalesce(s.last_failure_id, 0) > coalesce(s.last_success_id, 0) then 'failing'
               else 'ok'
             end as health,
             greatest(s.updated_at, s.last_success_at) as since,
             case when s.enabled then 2 * s.interval_ms + j.timeout_ms end as allowance_ms
    ) h`
}

/**
 * The condition keeping only schedules in one of `states` (with healthOf joined). When only late
 * ones are wanted, the late_at index finds the candidates instead of judging every schedule.
 */
export function healthIn(sql: Sql, states: readonly Health[], now: Date): PendingQuery<Row[]> {
  const candidates =
    states.length === 1 && states[0] === 'late' ? sql`s.enabled and s.late_at < ${now}` : sql`true`
  return sql`h.health = any(${states as Health[]}::text[]) and ${candidates}`
}

interface HealthRow {
  name: string
  health: Health
  since: Date
  allowanceMs: string | null
  lastSuccessAt: Date | null
  lastSuccessId: string | null
  lastFailureId: string | null
}

const orNull = (value: string | null) => (value === null ? null : Number(value))

/** One schedule in a metrics scrape: times in epoch seconds, read as numbers (10,000 Dates cost). */
export interface HealthLine {
  name: string
  health: Health
  lastSuccessAt: number | null
  /** The stored next fire of an enabled schedule of a registered job; null when not stored yet. */
  nextFireAt: number | null
  /** Enabled, and its job registered here: it has a next fire. */
  firing: boolean
  /** Only when nextFireAt is null, to compute it from. */
  cron: string | null
  timezone: string | null
}

export function createScheduleHealth(sql: Sql, jobs: Map<string, AnyJob>, clock: () => Date) {
  return {
    clock,

    /** Every schedule's health, last success and next fire, in one lean read (for /metrics). */
    async overview(now = clock()): Promise<HealthLine[]> {
      return await sql<HealthLine[]>`
        select s.name, h.health, extract(epoch from s.last_success_at)::float8 as last_success_at,
               extract(epoch from s.next_fire_at)::float8 as next_fire_at,
               s.enabled and j.name is not null as firing,
               case when s.next_fire_at is null then s.cron end as cron,
               case when s.next_fire_at is null then s.timezone end as timezone
        from schedules s ${healthOf(sql, jobs, now)}`
    },

    /** The health of the named schedules, or of every schedule (optionally only those in `only`). */
    async evaluate(
      which: { names?: string[]; only?: Health[] } = {},
      now = clock(),
    ): Promise<Map<string, HealthReport>> {
      if (which.names?.length === 0) return new Map()
      const rows = await sql<HealthRow[]>`
        select s.name, h.health, h.since, h.allowance_ms, s.last_success_at, s.last_success_id,
               s.last_failure_id
        from schedules s ${healthOf(sql, jobs, now)}
        where ${which.names ? sql`s.name = any(${which.names}::text[])` : sql`true`}
          and ${which.only ? healthIn(sql, which.only, now) : sql`true`}`
      return new Map(
        rows.map((r) => [
          r.name,
          {
            name: r.name,
            health: r.health,
            since: r.since,
            allowanceMs: orNull(r.allowanceMs),
            lastSuccessAt: r.lastSuccessAt,
            lastSuccessId: orNull(r.lastSuccessId),
            lastFailureId: orNull(r.lastFailureId),
          },
        ]),
      )
    },
  }
}

export type ScheduleHealth = ReturnType<typeof createScheduleHealth>
