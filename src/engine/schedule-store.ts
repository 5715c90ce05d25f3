// Schedules: stored in the database so edits persist and reach every instance. Validation (cron,
// timezone, job, args) happens here, before anything is written.
import type { Sql } from 'postgres'
import { Conflict, InvalidInput, NotFound } from '../lib/errors.js'
import { allOf, decodeNameCursor, encodeNameCursor, type Page } from '../lib/pagination.js'
import { validateArgs } from './args.js'
import { type ChainStep, validateChain } from './chains.js'
import { CronError, type CronSchedule, parseCron } from './cron.js'
import type { AnyJob, DefaultSchedule } from './job.js'
import { cronIntervalMs, type Health, healthIn, healthOf } from './schedule-health.js'
import { RECENT_STATES, type RecentRun } from './schemas/schedule.js'

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

export interface ScheduleFilter {
  job?: string
  enabled?: boolean
  health?: Health
  /** Name contains (case-insensitive). */
  q?: string
}

/** A schedule's latest finished runs (GET /schedules?recent=N), and how many of them succeeded. */
export interface RecentHistory {
  /** Oldest first, newest last. */
  recent: RecentRun[]
  /** succeeded / (succeeded + failed) of `recent`; null when it has neither. */
  successRate: number | null
}

/** A schedule as the scheduler needs it: with the next fire nobody has claimed yet. */
export interface DueSchedule extends Schedule {
  nextFireAt: Date
}

type ScheduleRow = Omit<Schedule, 'createdAt' | 'updatedAt'> & { createdAt: Date; updatedAt: Date }

const COLUMNS = [
  'name',
  'job',
  'cron',
  'timezone',
  'args',
  'enabled',
  'overlap',
  'catch_up',
  'then',
  'created_at',
  'updated_at',
]

/** Schedules whose next fire or interval is computed per pass of fillUnknown(). */
const FILL_CHUNK = 500

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
  const columns = sql(COLUMNS)
  const prefixed = sql.unsafe(COLUMNS.map((c) => `s."${c}"`).join(', '))
  /** Stored expressions this version rejects: left out of fillUnknown() after one complaint. */
  const unusable = new Set<string>()

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
    const [row] = await sql<ScheduleRow[]>`select ${columns} from schedules where name = ${name}`
    if (!row) throw new NotFound(`schedule "${name}" does not exist`)
    return toSchedule(row)
  }

  /**
   * The latest `count` finished runs of each named schedule: one lateral probe of the index
   * job_runs (schedule, id desc) per schedule, reading newest first and stopping at `count`, so
   * a page costs its size times `count` rows however long the history is. (Skipped runs in between
   * are read and passed over.)
   */
  async function recentOf(names: string[], count: number): Promise<Map<string, RecentHistory>> {
    const history = new Map<string, RecentHistory>()
    if (names.length === 0) return history
    const rows = await sql<
      { schedule: string; id: string; state: RecentRun['state']; startedAt: Date | null; finishedAt: Date }[]
    >`
      select s.name as schedule, r.id, r.state, r.started_at, r.finished_at
      from unnest(${names}::text[]) as s(name)
      cross join lateral (
        select id, state, started_at, finished_at from job_runs
        where schedule = s.name and state = any(${[...RECENT_STATES]}::text[]) and finished_at is not null
        order by id desc limit ${count}
      ) r`
    for (const row of rows) {
      let entry = history.get(row.schedule)
      if (!entry) {
        entry = { recent: [], successRate: null }
        history.set(row.schedule, entry)
      }
      entry.recent.push({
        id: Number(row.id),
        state: row.state,
        durationMs: row.startedAt ? row.finishedAt.getTime() - row.startedAt.getTime() : null,
        finishedAt: row.finishedAt.toISOString(),
      })
    }
    for (const entry of history.values()) {
      // Sorted here, a few rows per schedule, rather than all of them in one sort by the database.
      entry.recent.sort((a, b) => a.id - b.id)
      const succeeded = entry.recent.filter((r) => r.state === 'succeeded').length
      const failed = entry.recent.filter((r) => r.state === 'failed').length
      entry.successRate = succeeded + failed > 0 ? succeeded / (succeeded + failed) : null
    }
    return history
  }

  type DueRow = ScheduleRow & { nextFireAt: Date }
  const toDue = (row: DueRow): DueSchedule => ({ ...toSchedule(row), nextFireAt: row.nextFireAt })

  return {
    get,
    notify,

    /**
     * Ordered by name, keyset-paginated on it; `now` is when health is judged. With `recent` > 0,
     * each schedule comes with its latest `recent` finished runs (see recentOf).
     */
    async list(
      filter: ScheduleFilter,
      limit: number,
      cursor: string | undefined,
      now: Date,
      recent = 0,
    ): Promise<Page<Schedule & Partial<RecentHistory>>> {
      const after = cursor === undefined ? null : decodeNameCursor(cursor)
      const where = allOf(sql, [
        filter.job !== undefined && sql`s.job = ${filter.job}`,
        filter.enabled !== undefined && sql`s.enabled = ${filter.enabled}`,
        filter.health !== undefined && healthIn(sql, [filter.health], now),
        filter.q !== undefined && sql`strpos(lower(s.name), ${filter.q.toLowerCase()}) > 0`,
        after !== null && sql`s.name > ${after}`,
      ])
      const rows = await sql<ScheduleRow[]>`
        select ${prefixed} from schedules s
        ${filter.health === undefined ? sql`` : healthOf(sql, jobs, now)}
        where ${where} order by s.name limit ${limit + 1}`
      const items = rows.slice(0, limit).map(toSchedule)
      const last = items[items.length - 1]
      const nextCursor = rows.length > limit && last ? encodeNameCursor(last.name) : null
      if (recent <= 0) return { items, nextCursor }
      const history = await recentOf(
        items.map((s) => s.name),
        recent,
      )
      return {
        items: items.map((s) => ({ ...s, ...(history.get(s.name) ?? { recent: [], successRate: null }) })),
        nextCursor,
      }
    },

    /** The names of each job's schedules. */
    async namesByJob(jobNames: string[]): Promise<Map<string, string[]>> {
      const rows = await sql<{ job: string; names: string[] }[]>`
        select job, array_agg(name order by name) as names from schedules
        where job = any(${jobNames}::text[]) group by job`
      return new Map(rows.map((row) => [row.job, row.names]))
    },

    async create(input: ScheduleInput): Promise<Schedule> {
      const job = jobOf(input.job)
      const timezone = input.timezone ?? defaultTimezone
      const cron = compileCron(input.cron, timezone)
      const args = validateArgs(job.args, input.args ?? {})
      const then = validateChain(jobs, input.then)
      const enabled = input.enabled ?? true
      // Its next fire is stored with it, so every instance told of it can arm it at once.
      const now = new Date()
      const rows = await sql<ScheduleRow[]>`
        insert into schedules (name, job, cron, timezone, args, enabled, overlap, catch_up, "then", interval_ms,
                               next_fire_at)
        values (${input.name}, ${job.name}, ${input.cron.trim()}, ${timezone}, ${sql.json(args as never)},
                ${enabled}, ${input.overlap ?? 'skip'}, ${input.catchUp ?? 'latest'},
                ${then ? sql.json(then as never) : null}, ${cronIntervalMs(input.cron, timezone, now)},
                ${enabled ? cron.next(now) : null})
        on conflict (name) do nothing
        returning ${columns}`
      if (!rows[0]) throw new Conflict(`schedule "${input.name}" already exists; PATCH it instead`)
      await notify(input.name)
      return toSchedule(rows[0])
    },

    async update(name: string, patch: SchedulePatch): Promise<Schedule> {
      const current = await get(name)
      const next = { ...current, ...stripUndefined(patch) }
      const job = jobOf(current.job)
      const cron = compileCron(next.cron, next.timezone)
      const args = validateArgs(job.args, next.args)
      // `then: null` removes the chain; left out, it is kept (and checked again: a job may be gone).
      const then = validateChain(jobs, next.then)
      // A new cron, timezone or enabled means a new next fire, counted from this edit and stored
      // with it (should it equal the old one, a trigger drops it and the scheduler computes it).
      const now = new Date()
      const refire =
        next.cron.trim() !== current.cron ||
        next.timezone !== current.timezone ||
        next.enabled !== current.enabled
      const nextFire = refire ? sql`${next.enabled ? cron.next(now) : null}` : sql`next_fire_at`
      const [row] = await sql<ScheduleRow[]>`
        update schedules set cron = ${next.cron.trim()}, timezone = ${next.timezone},
          args = ${sql.json(args as never)}, enabled = ${next.enabled}, overlap = ${next.overlap},
          catch_up = ${next.catchUp}, "then" = ${then ? sql.json(then as never) : null}, updated_at = now(),
          interval_ms = ${cronIntervalMs(next.cron, next.timezone, now)}, next_fire_at = ${nextFire}
        where name = ${name}
        returning ${columns}`
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
     * Enabled schedules of the given jobs whose next unclaimed fire is before `before`, soonest
     * first: an index range scan, so its cost follows the fires in the range, not the schedules.
     */
    async due(before: Date, jobNames: string[], limit: number): Promise<DueSchedule[]> {
      const rows = await sql<DueRow[]>`
        select ${columns}, next_fire_at from schedules
        where enabled and next_fire_at < ${before} and job = any(${jobNames}::text[])
        order by next_fire_at limit ${limit}`
      return rows.map(toDue)
    },

    /** The named schedules that are enabled and have a next fire, for the given jobs. */
    async firing(names: string[], jobNames: string[]): Promise<DueSchedule[]> {
      const rows = await sql<DueRow[]>`
        select ${columns}, next_fire_at from schedules
        where name = any(${names}::text[]) and enabled and next_fire_at is not null
          and job = any(${jobNames}::text[])`
      return rows.map(toDue)
    },

    /**
     * Computes the next fire (and interval) of enabled schedules that have none yet: new rows
     * written by SQL, edits, re-enabled schedules, rows from before this column existed. The next
     * fire counts from the schedule's latest claimed fire or its last edit, whichever is newer, so
     * fires missed before it was known (Steward was down) are found and settled by the scheduler.
     * Rows are locked with SKIP LOCKED: instances starting together share the work. Returns how
     * many schedules it filled, and those it could not (a stored cron this version rejects; they
     * are not tried again by this process).
     */
    async fillUnknown(now: Date): Promise<{ filled: number; rejected: string[] }> {
      let filled = 0
      const rejected: string[] = []
      for (;;) {
        const done = await sql.begin(async (tx) => {
          const rows = await tx<
            { name: string; cron: string; timezone: string; since: Date; nextFireAt: Date | null }[]
          >`
            select s.name, s.cron, s.timezone, s.next_fire_at,
                   greatest(s.updated_at, (select max(r.scheduled_for) from job_runs r
                                           where r.schedule = s.name and r.trigger in ('schedule', 'catch-up'))) as since
            from schedules s
            where s.enabled and (s.next_fire_at is null or s.interval_ms is null)
              and s.name <> all(${[...unusable]}::text[])
            order by s.name limit ${FILL_CHUNK} for update of s skip locked`
          const computed: { name: string; next: string; interval: number | null }[] = []
          // Rows inserted together share their `since`, and often their expression.
          const nextOf = new Map<string, Date>()
          for (const row of rows) {
            try {
              const key = `${row.timezone}\n${row.cron}\n${row.since.getTime()}`
              const next =
                row.nextFireAt ?? nextOf.get(key) ?? parseCron(row.cron, row.timezone).next(row.since)
              nextOf.set(key, next)
              computed.push({
                name: row.name,
                next: next.toISOString(),
                interval: cronIntervalMs(row.cron, row.timezone, now),
              })
            } catch {
              unusable.add(row.name)
              rejected.push(row.name)
            }
          }
          if (computed.length > 0)
            await tx`
              update schedules s set next_fire_at = c.next, interval_ms = c.interval
              from unnest(${computed.map((c) => c.name)}::text[], ${computed.map((c) => c.next)}::timestamptz[],
                          ${computed.map((c) => c.interval)}::bigint[]) as c(name, next, interval)
              where s.name = c.name`
          filled += computed.length
          return rows.length < FILL_CHUNK
        })
        if (done) return { filled, rejected }
        // Let the event loop breathe between chunks.
        await new Promise((resolve) => setImmediate(resolve))
      }
    },

    /**
     * Creates each registered job's default schedules that were never seeded before, so a schedule
     * the operator deleted stays deleted. Safe for several instances starting at once.
     */
    async seedDefaults(): Promise<string[]> {
      const defaults = defaultSchedules(jobs.values())
      // Most starts have nothing to seed: one read first, a transaction only for what is new.
      const known = await sql<{ name: string }[]>`
        select name from schedule_seeds where name = any(${defaults.map((def) => def.name)})`
      const done = new Set(known.map((row) => row.name))
      const seeded: string[] = []
      for (const def of defaults) {
        if (done.has(def.name)) continue
        const created = await sql.begin(async (tx) => {
          const [fresh] = await tx`
            insert into schedule_seeds (name) values (${def.name}) on conflict do nothing returning name`
          if (!fresh) return false
          // A default chain whose jobs are not all registered here is left out, not an error.
          const then = def.then?.every((step) => jobs.has(step.job)) ? validateChain(jobs, def.then) : null
          await tx`
            insert into schedules (name, job, cron, timezone, args, "then", interval_ms)
            values (${def.name}, ${def.job}, ${def.cron}, ${defaultTimezone}, ${tx.json((def.args ?? {}) as never)},
                    ${then ? tx.json(then as never) : null},
                    ${cronIntervalMs(def.cron, defaultTimezone, new Date())})
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
