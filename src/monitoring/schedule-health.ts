// Schedule health: is each schedule doing its chore? `late` when its last success is older than
// twice its interval plus its job's timeout, `failing` when its latest finished run failed, else
// `ok`. Shown on GET /schedules, exported as a metric, and watched by the alert loop.
import type { Sql } from 'postgres'
import { parseCron } from '../engine/cron.js'
import type { AnyJob } from '../engine/job.js'
import type { Schedule } from '../engine/schedule-store.js'

export const HEALTH_STATES = ['ok', 'late', 'failing'] as const
export type Health = (typeof HEALTH_STATES)[number]

export interface Outcomes {
  /** finished_at of the newest succeeded run of the schedule. */
  lastSuccessAt: Date | null
  lastSuccessId: number | null
  lastFailureId: number | null
}

export interface HealthReport extends Outcomes {
  name: string
  health: Health
  /** Since when the schedule has been expected to succeed: its last success, or its last edit. */
  since: Date
  /** How long after `since` it becomes late; null when it is not expected to fire. */
  allowanceMs: number | null
}

/** How many upcoming gaps are looked at: crons such as "0 0 1 * 1" have uneven gaps. */
const GAPS = 4

/**
 * The schedule's interval: the widest gap between its next few fires. Null when it cannot be
 * computed (a stored expression this version no longer accepts).
 */
export function cronIntervalMs(cron: string, timezone: string, now: Date): number | null {
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
 * Pure: the health of one schedule at `now`. Lateness is counted from the last success or the
 * schedule's last edit, whichever is newer, so a schedule just created (or re-enabled) is not late
 * before it had time to run; a disabled schedule, or one whose job is not registered here, is never
 * late. Runs that were cancelled or skipped say nothing about health.
 */
export function evaluateHealth(
  schedule: Pick<Schedule, 'name' | 'cron' | 'timezone' | 'enabled' | 'updatedAt'>,
  job: Pick<AnyJob, 'timeoutMs'> | undefined,
  outcomes: Outcomes,
  now: Date,
): HealthReport {
  const edited = new Date(schedule.updatedAt)
  const since = outcomes.lastSuccessAt && outcomes.lastSuccessAt > edited ? outcomes.lastSuccessAt : edited
  const interval = schedule.enabled && job ? cronIntervalMs(schedule.cron, schedule.timezone, now) : null
  const allowanceMs = interval === null || !job ? null : 2 * interval + job.timeoutMs
  let health: Health = 'ok'
  if (allowanceMs !== null && now.getTime() - since.getTime() > allowanceMs) health = 'late'
  else if ((outcomes.lastFailureId ?? 0) > (outcomes.lastSuccessId ?? 0)) health = 'failing'
  return { name: schedule.name, health, since, allowanceMs, ...outcomes }
}

export function createScheduleHealth(sql: Sql, jobs: Map<string, AnyJob>, clock: () => Date) {
  /** Each schedule's latest success and failure: two probes of job_runs_schedule_outcome each. */
  async function outcomes(names: string[]): Promise<Map<string, Outcomes>> {
    if (names.length === 0) return new Map()
    const rows = await sql<
      { name: string; successId: string | null; successAt: Date | null; failureId: string | null }[]
    >`
      select v.name, s.id as success_id, s.finished_at as success_at, f.id as failure_id
      from unnest(${names}::text[]) as v(name)
      left join lateral (
        select id, finished_at from job_runs
        where schedule = v.name and state = 'succeeded' order by id desc limit 1
      ) s on true
      left join lateral (
        select id from job_runs where schedule = v.name and state = 'failed' order by id desc limit 1
      ) f on true`
    return new Map(
      rows.map((r) => [
        r.name,
        {
          lastSuccessAt: r.successAt,
          lastSuccessId: r.successId === null ? null : Number(r.successId),
          lastFailureId: r.failureId === null ? null : Number(r.failureId),
        },
      ]),
    )
  }

  return {
    clock,

    async evaluate(schedules: Schedule[], now = clock()): Promise<Map<string, HealthReport>> {
      const found = await outcomes(schedules.map((s) => s.name))
      const none: Outcomes = { lastSuccessAt: null, lastSuccessId: null, lastFailureId: null }
      return new Map(
        schedules.map((s) => [s.name, evaluateHealth(s, jobs.get(s.job), found.get(s.name) ?? none, now)]),
      )
    },
  }
}

export type ScheduleHealth = ReturnType<typeof createScheduleHealth>
