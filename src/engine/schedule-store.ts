// Schedules: stored in the database so edits persist and reach every instance. Validation (cron,
// timezone, job, args) happens here, before anything is written.
import type { Sql } from 'postgres'
import { Conflict, InvalidInput, NotFound } from '../lib/errors.js'
import { validateArgs } from './args.js'
import { type ChainStep, validateChain } from './chains.js'
import { CronError, type CronSchedule, parseCron } from './cron.js'
import type { AnyJob, DefaultSchedule } from './job.js'

export type Overlap = 'skip' | 'allow'
export type CatchUp = 'none' | 'latest'

export interface Schedule {
  name: string
  job: string
  cron: string
  timezone: string
  args: Record<string, unknown>
  enabled: boolean
  overlap: Overlap
  catchUp: CatchUp
  /** Jobs run after each successful fire (see chains.ts); null: none. */
  then: ChainStep[] | null
  createdAt: string
  updatedAt: string
}

export interface ScheduleInput {
  name: string
  job: string
  cron: string
  timezone?: string
  args?: Record<string, unknown>
  enabled?: boolean
  overlap?: Overlap
  catchUp?: CatchUp
  then?: ReadonlyArray<{ job: string; args?: Record<string, unknown> }> | null
}

export type SchedulePatch = Partial<Omit<ScheduleInput, 'name' | 'job'>>

type ScheduleRow = Omit<Schedule, 'createdAt' | 'updatedAt'> & { createdAt: Date; updatedAt: Date }

const toSchedule = (row: ScheduleRow): Schedule => ({
  ...row,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
})

/** Parses a cron expression for a schedule, turning cron errors into 400s. */
export function compileCron(cron: string, timezone: string): CronSchedule {
  try {
    return parseCron(cron, timezone)
  } catch (err) {
    if (err instanceof CronError) throw new InvalidInput(err.message)
    throw err
  }
}

export const SCHEDULE_CHANNEL = 'steward_schedules'

export function createScheduleStore(sql: Sql, jobs: Map<string, AnyJob>, defaultTimezone: string) {
  function jobOf(name: string): AnyJob {
    const job = jobs.get(name)
    if (!job)
      throw new InvalidInput(`job "${name}" does not exist; known jobs: ${[...jobs.keys()].join(', ')}`)
    return job
  }

  /** Tells every instance (this one included) that a schedule changed. */
  async function notify(name: string): Promise<void> {
    await sql`select pg_notify(${SCHEDULE_CHANNEL}, ${name})`
  }

  async function get(name: string): Promise<Schedule> {
    const [row] = await sql<ScheduleRow[]>`select * from schedules where name = ${name}`
    if (!row) throw new NotFound(`schedule "${name}" does not exist`)
    return toSchedule(row)
  }

  return {
    get,
    notify,

    async list(): Promise<Schedule[]> {
      const rows = await sql<ScheduleRow[]>`select * from schedules order by name`
      return rows.map(toSchedule)
    },

    async create(input: ScheduleInput): Promise<Schedule> {
      const job = jobOf(input.job)
      const timezone = input.timezone ?? defaultTimezone
      compileCron(input.cron, timezone)
      const args = validateArgs(job.args, input.args ?? {})
      const then = validateChain(jobs, input.then)
      const rows = await sql<ScheduleRow[]>`
        insert into schedules (name, job, cron, timezone, args, enabled, overlap, catch_up, "then")
        values (${input.name}, ${job.name}, ${input.cron.trim()}, ${timezone}, ${sql.json(args as never)},
                ${input.enabled ?? true}, ${input.overlap ?? 'skip'}, ${input.catchUp ?? 'latest'},
                ${then ? sql.json(then as never) : null})
        on conflict (name) do nothing
        returning *`
      if (!rows[0]) throw new Conflict(`schedule "${input.name}" already exists; PATCH it instead`)
      await notify(input.name)
      return toSchedule(rows[0])
    },

    async update(name: string, patch: SchedulePatch): Promise<Schedule> {
      const current = await get(name)
      const next = { ...current, ...stripUndefined(patch) }
      const job = jobOf(current.job)
      compileCron(next.cron, next.timezone)
      const args = validateArgs(job.args, next.args)
      // `then: null` removes the chain; left out, it is kept (and checked again: a job may be gone).
      const then = validateChain(jobs, next.then)
      const [row] = await sql<ScheduleRow[]>`
        update schedules set cron = ${next.cron.trim()}, timezone = ${next.timezone},
          args = ${sql.json(args as never)}, enabled = ${next.enabled}, overlap = ${next.overlap},
          catch_up = ${next.catchUp}, "then" = ${then ? sql.json(then as never) : null}, updated_at = now()
        where name = ${name}
        returning *`
      if (!row) throw new NotFound(`schedule "${name}" does not exist`)
      await notify(name)
      return toSchedule(row)
    },

    async remove(name: string): Promise<void> {
      const rows = await sql`delete from schedules where name = ${name} returning name`
      if (rows.length === 0) throw new NotFound(`schedule "${name}" does not exist`)
      await notify(name)
    },

    /**
     * Creates each registered job's default schedules that were never seeded before, so a schedule
     * the operator deleted stays deleted. Safe for several instances starting at once.
     */
    async seedDefaults(): Promise<string[]> {
      const seeded: string[] = []
      for (const def of defaultSchedules(jobs.values())) {
        const created = await sql.begin(async (tx) => {
          const [fresh] = await tx`
            insert into schedule_seeds (name) values (${def.name}) on conflict do nothing returning name`
          if (!fresh) return false
          // A default chain whose jobs are not all registered here is left out, not an error.
          const then = def.then?.every((step) => jobs.has(step.job)) ? validateChain(jobs, def.then) : null
          await tx`
            insert into schedules (name, job, cron, timezone, args, "then")
            values (${def.name}, ${def.job}, ${def.cron}, ${defaultTimezone}, ${tx.json((def.args ?? {}) as never)},
                    ${then ? tx.json(then as never) : null})
            on conflict (name) do nothing`
          return true
        })
        if (created) seeded.push(def.name)
      }
      return seeded
    },
  }
}

/** The default schedules the given jobs declare, each with its job's name. */
export function defaultSchedules(jobs: Iterable<AnyJob>): Array<DefaultSchedule & { job: string }> {
  return [...jobs].flatMap((job) => (job.schedules ?? []).map((schedule) => ({ ...schedule, job: job.name })))
}

function stripUndefined<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>
}

export type ScheduleStore = ReturnType<typeof createScheduleStore>
