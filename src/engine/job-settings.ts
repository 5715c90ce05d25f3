// Per-job limits an operator can change at run time: how many runs of a job may run at once across
// every instance, how many attempts a run gets, and how long one may take. Overrides live in
// job_settings (null: the job's own default); every instance keeps a copy, refreshed when any
// instance changes one (NOTIFY) and every couple of seconds in case a notification was lost.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { AnyJob } from './job.js'

export interface Limits {
  concurrency: number
  maxAttempts: number
  timeoutMs: number
}

export type LimitsPatch = { [K in keyof Limits]?: number | null }

/** The bounds an override must respect; the database checks them too. */
export const LIMIT_BOUNDS: Record<keyof Limits, { min: number; max: number }> = {
  concurrency: { min: 1, max: 100 },
  maxAttempts: { min: 1, max: 20 },
  timeoutMs: { min: 1000, max: 86_400_000 },
}

/** A job's limits as written in its definition. */
export function defaultLimits(job: AnyJob): Limits {
  return { concurrency: job.concurrency ?? 1, maxAttempts: job.maxAttempts, timeoutMs: job.timeoutMs }
}

export const JOB_SETTINGS_CHANNEL = 'steward_job_settings'

/** How often the copy is refreshed without a notification (ms). */
const REFRESH_MS = 2000

interface SettingsRow {
  job: string
  concurrency: number | null
  maxAttempts: number | null
  timeoutMs: number | null
}

export function createJobSettings(sql: Sql, jobs: Map<string, AnyJob>, log: FastifyBaseLogger) {
  let overrides = new Map<string, SettingsRow>()
  let timer: NodeJS.Timeout | undefined
  let unlisten: (() => Promise<void>) | undefined

  async function refresh(): Promise<void> {
    const rows = await sql<SettingsRow[]>`select job, concurrency, max_attempts, timeout_ms from job_settings`
    overrides = new Map(rows.map((row) => [row.job, row]))
  }

  const refreshLogged = () =>
    refresh().catch((err) => log.warn({ err }, 'could not refresh job settings; will retry'))

  /** The limits in force for a job: its overrides over its defaults. */
  function limits(job: AnyJob): Limits {
    const base = defaultLimits(job)
    const o = overrides.get(job.name)
    return {
      concurrency: o?.concurrency ?? base.concurrency,
      maxAttempts: o?.maxAttempts ?? base.maxAttempts,
      timeoutMs: o?.timeoutMs ?? base.timeoutMs,
    }
  }

  return {
    limits,

    /** Each registered job's concurrency, as the claim of queued runs needs it. */
    concurrencies(): Map<string, number> {
      return new Map([...jobs.values()].map((job) => [job.name, limits(job).concurrency]))
    },

    /** Sets (a number) or clears (null) overrides; fields left out keep their value. */
    async update(job: AnyJob, patch: LimitsPatch): Promise<Limits> {
      const has = (key: keyof Limits) => patch[key] !== undefined
      const value = (key: keyof Limits) => patch[key] ?? null
      await sql.begin(async (tx) => {
        await tx`
          insert into job_settings (job, concurrency, max_attempts, timeout_ms)
          values (${job.name}, ${value('concurrency')}, ${value('maxAttempts')}, ${value('timeoutMs')})
          on conflict (job) do update set
            concurrency = case when ${has('concurrency')} then excluded.concurrency else job_settings.concurrency end,
            max_attempts = case when ${has('maxAttempts')} then excluded.max_attempts else job_settings.max_attempts end,
            timeout_ms = case when ${has('timeoutMs')} then excluded.timeout_ms else job_settings.timeout_ms end,
            updated_at = now()`
        await tx`delete from job_settings
                 where job = ${job.name} and concurrency is null and max_attempts is null and timeout_ms is null`
        await tx`select pg_notify(${JOB_SETTINGS_CHANNEL}, ${job.name})`
      })
      await refresh()
      return limits(job)
    },

    async start(): Promise<void> {
      await refresh()
      const subscription = await sql.listen(JOB_SETTINGS_CHANNEL, refreshLogged, refreshLogged)
      unlisten = subscription.unlisten
      timer = setInterval(refreshLogged, REFRESH_MS)
      timer.unref()
    },

    async stop(): Promise<void> {
      clearInterval(timer)
      await unlisten?.().catch(() => {})
    },
  }
}

export type JobSettings = ReturnType<typeof createJobSettings>
