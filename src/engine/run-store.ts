// The run history (job_runs): one row per attempt, written before the job starts and updated when it
// ends. Every state change is a conditional update, so two actors (a finishing job and a cancel, or
// two instances) can never both win.
import type { Sql } from 'postgres'
import type { JsonValue } from '../lib/json.js'
import { allOf, decodeCursor, type Page, toPage } from '../lib/pagination.js'
import type { ChainStep } from './chains.js'
import type { Run, RunError, RunProgress, RunState, RunTrigger, WaitingFor } from './schemas/run.js'

export type { Run, RunError, RunProgress, RunState, RunTrigger }

interface RunRow {
  id: string
  job: string
  schedule: string | null
  trigger: RunTrigger
  state: RunState
  attempt: number
  maxAttempts: number
  retryOf: string | null
  args: Record<string, unknown>
  scheduledFor: Date | null
  queuedAt: Date
  runAfter: Date | null
  startedAt: Date | null
  finishedAt: Date | null
  result: JsonValue | null
  error: RunError | null
  instance: string | null
  waitingFor: WaitingFor | null
  parentId: string | null
  then: ChainStep[] | null
  progress: RunProgress | null
}

const iso = (d: Date | null) => (d ? d.toISOString() : null)

export function toRun(row: RunRow): Run {
  return {
    id: Number(row.id),
    job: row.job,
    schedule: row.schedule,
    trigger: row.trigger,
    state: row.state,
    attempt: row.attempt,
    maxAttempts: row.maxAttempts,
    retryOf: row.retryOf === null ? null : Number(row.retryOf),
    args: row.args,
    scheduledFor: iso(row.scheduledFor),
    queuedAt: row.queuedAt.toISOString(),
    runAfter: iso(row.runAfter),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    durationMs: row.startedAt && row.finishedAt ? row.finishedAt.getTime() - row.startedAt.getTime() : null,
    result: row.result,
    error: row.error,
    instance: row.instance,
    waitingFor: row.state === 'queued' ? row.waitingFor : null,
    parentId: row.parentId === null ? null : Number(row.parentId),
    then: row.then,
    progress: row.progress,
  }
}

export interface RunFilter {
  job?: string
  schedule?: string
  state?: RunState
  trigger?: RunTrigger
  since?: string
  until?: string
  parentId?: number
}

export interface NewRun {
  job: string
  schedule?: string | null
  trigger: RunTrigger
  args: Record<string, unknown>
  attempt?: number
  maxAttempts: number
  retryOf?: number | null
  scheduledFor?: Date | null
  /** Not before this many ms from now (retries). */
  delayMs?: number
  parentId?: number | null
  then?: ChainStep[] | null
}

export type FireOutcome = { outcome: 'claimed' | 'skipped'; run: Run } | { outcome: 'taken' }

/** One fire to claim: the run it becomes, its schedule's overlap policy, and why it is skipped, if it is. */
export interface FireClaim {
  run: NewRun & { schedule: string; scheduledFor: Date }
  overlap: 'skip' | 'allow'
  skip?: RunError | null
}

/**
 * A schedule's next fire moved on by a claim: from the fire the claimer saw as next, to the first
 * fire after the ones it claims (null: none). The move is a compare-and-set, so of several instances
 * claiming the same fires one moves it, and only that one's fires are inserted.
 */
export interface Advance {
  schedule: string
  from: Date
  to: Date | null
}

const fireKey = (schedule: string, at: Date) => `${schedule}@${at.getTime()}`

/** How long a claim waits for another's locks, and how long its own may be held by a stalled client. */
const CLAIM_LOCK_TIMEOUT = '5s'
const CLAIM_IDLE_TIMEOUT = '10s'

const COLUMNS = [
  'id',
  'job',
  'schedule',
  'trigger',
  'state',
  'attempt',
  'max_attempts',
  'retry_of',
  'args',
  'scheduled_for',
  'queued_at',
  'run_after',
  'started_at',
  'finished_at',
  'result',
  'error',
  'instance',
  'waiting_for',
  'parent_id',
  'then',
  'progress',
]

export function createRunStore(sql: Sql) {
  const columns = sql(COLUMNS)
  const one = (rows: RunRow[]) => (rows[0] ? toRun(rows[0]) : null)
  /** A chain as stored: the steps, or null when there are none. */
  const chainJson = (steps: ChainStep[] | null | undefined) =>
    steps && steps.length > 0 ? sql.json(steps as unknown as JsonValue) : null

  /** A queued run: started at once by whoever inserted it, or later by a poller when delayed. */
  async function insertQueued(run: NewRun): Promise<Run> {
    const [row] = await sql<RunRow[]>`
      insert into job_runs (job, schedule, trigger, state, attempt, max_attempts, retry_of, args, scheduled_for,
                            run_after, parent_id, "then")
      values (${run.job}, ${run.schedule ?? null}, ${run.trigger}, 'queued', ${run.attempt ?? 1},
              ${run.maxAttempts}, ${run.retryOf ?? null}, ${sql.json(run.args as JsonValue)},
              ${run.scheduledFor ?? null},
              ${run.delayMs ? sql`now() + ${run.delayMs} * interval '1 millisecond'` : null},
              ${run.parentId ?? null}, ${chainJson(run.then)})
      returning ${columns}`
    return toRun(row as RunRow)
  }

  /** The newest run for each value of `job` or `schedule`, one index probe per value. */
  async function latestBy(column: 'job' | 'schedule', values: string[]): Promise<Map<string, Run>> {
    if (values.length === 0) return new Map()
    const rows = await sql<RunRow[]>`
      select r.* from unnest(${values}::text[]) as v(value)
      cross join lateral (
        select ${columns} from job_runs where ${sql(column)} = v.value order by id desc limit 1
      ) r`
    return new Map(rows.map((row) => [String(row[column]), toRun(row)]))
  }

  return {
    async get(id: number): Promise<Run | null> {
      return one(await sql<RunRow[]>`select ${columns} from job_runs where id = ${id}`)
    },

    /** Newest first, keyset-paginated on id. */
    async list(filter: RunFilter, limit: number, cursor?: string): Promise<Page<Run>> {
      const after = cursor ? decodeCursor(cursor) : null
      const where = allOf(sql, [
        filter.job !== undefined && sql`job = ${filter.job}`,
        filter.schedule !== undefined && sql`schedule = ${filter.schedule}`,
        filter.state !== undefined && sql`state = ${filter.state}`,
        filter.trigger !== undefined && sql`trigger = ${filter.trigger}`,
        filter.since !== undefined && sql`queued_at >= ${filter.since}`,
        filter.until !== undefined && sql`queued_at < ${filter.until}`,
        filter.parentId !== undefined && sql`parent_id = ${filter.parentId}`,
        after !== null && sql`id < ${after}`,
      ])
      const rows = await sql<RunRow[]>`
        select ${columns} from job_runs where ${where} order by id desc limit ${limit + 1}`
      return toPage(rows.map(toRun), limit)
    },

    insertQueued,

    /**
     * Claims fires of schedules, all in one transaction: one round of statements however many
     * schedules fire at the same instant. The unique key (schedule, scheduled_for) makes exactly one
     * instance win each fire. A fire is recorded as skipped when its `skip` says so, or when its
     * overlap is 'skip' and an unfinished run of the same schedule exists. The advisory locks, taken
     * in one order by every instance, serialise that check per schedule across instances, and the
     * insert is its own statement, so it sees whatever committed while the locks were awaited.
     * The overlap check cannot see fires inserted by the same statement: give it at most one fire
     * to run per schedule (fires that carry a `skip` may be added freely). With `advances`, each
     * schedule's next fire is moved on first, and the fires of a schedule whose move failed (another
     * instance claimed them, or the schedule changed) are left out as taken.
     */
    async claimFires(all: FireClaim[], advances: Advance[] = []): Promise<FireOutcome[]> {
      if (all.length === 0) return []
      const names = [...new Set(all.map((f) => f.run.schedule))]
      // Read committed whatever the database's default: the insert must see what committed while
      // the locks were awaited. A claim never waits long, nor holds its locks while its client stalls:
      // a fire it gives up on is found again by the scheduler's scan for overdue fires.
      const rows = await sql.begin('isolation level read committed', async (tx) => {
        await tx`
          select set_config('lock_timeout', ${CLAIM_LOCK_TIMEOUT}, true),
                 set_config('idle_in_transaction_session_timeout', ${CLAIM_IDLE_TIMEOUT}, true)`
        await tx`
          select count(pg_advisory_xact_lock(hashtext('steward.schedule'), k))
          from (select distinct hashtext(name) as k from unnest(${names}::text[]) as u(name) order by 1) keys`
        let fires = all
        if (advances.length > 0) {
          const moved = await tx<{ name: string }[]>`
            update schedules s set next_fire_at = a.next
            from unnest(${advances.map((a) => a.schedule)}::text[],
                        ${advances.map((a) => a.from.toISOString())}::timestamptz[],
                        ${advances.map((a) => a.to?.toISOString() ?? null)}::timestamptz[]) as a(name, expected, next)
            where s.name = a.name and s.next_fire_at = a.expected and s.enabled
            returning s.name`
          const won = new Set(moved.map((row) => row.name))
          fires = all.filter((f) => won.has(f.run.schedule))
          if (fires.length === 0) return [] as RunRow[]
        }
        const input = fires.map(({ run, overlap, skip }) => ({
          job: run.job,
          schedule: run.schedule,
          trig: run.trigger,
          max_attempts: run.maxAttempts,
          args: run.args,
          scheduled_for: run.scheduledFor.toISOString(),
          then: run.then ?? null,
          overlap,
          ...(skip ? { skip } : {}),
        }))
        return await tx<RunRow[]>`
          insert into job_runs (job, schedule, trigger, state, attempt, max_attempts, args, scheduled_for,
                                finished_at, error, "then")
          select f.job, f.schedule, f.trig, case when d.skip is null then 'queued' else 'skipped' end, 1,
                 f.max_attempts, f.args, f.scheduled_for, case when d.skip is null then null else now() end,
                 d.skip, f."then"
          from jsonb_to_recordset(${tx.json(input as unknown as JsonValue)}) as f(
            job text, schedule text, trig text, max_attempts int, args jsonb, scheduled_for timestamptz,
            "then" jsonb, overlap text, skip jsonb)
          cross join lateral (
            select coalesce(f.skip, (
              select jsonb_build_object('code', 'overlap',
                                        'message', 'run ' || b.id || ' of this schedule was still running')
              from job_runs b
              where f.overlap = 'skip' and b.schedule = f.schedule and b.state in ('queued', 'running')
              order by b.id limit 1)) as skip
          ) d
          on conflict (schedule, scheduled_for) where trigger in ('schedule', 'catch-up') do nothing
          returning ${columns}`
      })
      const won = new Map(rows.map((row) => [fireKey(row.schedule as string, row.scheduledFor as Date), row]))
      return all.map(({ run }): FireOutcome => {
        // A fire listed twice is won once: the second mention finds it taken.
        const key = fireKey(run.schedule, run.scheduledFor)
        const row = won.get(key)
        won.delete(key)
        if (!row) return { outcome: 'taken' }
        return { outcome: row.state === 'skipped' ? 'skipped' : 'claimed', run: toRun(row) }
      })
    },

    /**
     * Starts queued runs for this instance, oldest due first, as far as limits allow: at most
     * `capacity` runs (this instance's free slots), and per job no more than its concurrency minus
     * the runs of it already running on any instance. Each job's count is taken under a transaction
     * advisory lock that every instance takes in the same order, so two instances can never both
     * fill a job's last slot. Due runs left queued are marked with what they wait for.
     * `concurrency` maps every job this instance runs to its limit; runs of other jobs are left to
     * an instance that has them. Only runs due for at least `settledMs` are looked at (a poll leaves
     * a fresh run to the instance that queued it). `waiting`: how many due runs are still queued.
     */
    async claimQueued(
      instance: string,
      capacity: number,
      concurrency: Map<string, number>,
      settledMs = 0,
    ): Promise<{ started: Run[]; waiting: number }> {
      const known = [...concurrency.keys()]
      const dueBy = sql`now() - ${settledMs} * interval '1 millisecond'`
      // Usually nothing waits: one indexed statement, and no transaction.
      const due = await sql<{ job: string; n: number }[]>`
        select job, count(*)::int as n from job_runs
        where state = 'queued' and coalesce(run_after, queued_at) <= ${dueBy} and job = any(${known}::text[])
        group by job`
      if (due.length === 0) return { started: [], waiting: 0 }
      const names = due.map((w) => w.job).sort()
      const total = due.reduce((sum, w) => sum + w.n, 0)
      // Pipelined (one round trip for the three): each statement still sees what committed before it
      // ran, so the count is taken after the locks are held.
      const [, , rows] = await sql.begin('isolation level read committed', (tx) => [
        tx`select set_config('lock_timeout', ${CLAIM_LOCK_TIMEOUT}, true)`,
        tx`
          select count(pg_advisory_xact_lock(hashtext('steward.job'), k))
          from (select distinct hashtext(name) as k from unnest(${names}::text[]) as u(name) order by 1) keys`,
        tx<RunRow[]>`
          with lim as (
            select l.job, l.concurrency - (
              select count(*) from job_runs r where r.state = 'running' and r.job = l.job) as free
            from unnest(${names}::text[], ${names.map((n) => concurrency.get(n) ?? 1)}::int[])
              as l(job, concurrency)
          ),
          ranked as (
            select q.id, q.job, coalesce(q.run_after, q.queued_at) as due,
                   row_number() over (partition by q.job order by coalesce(q.run_after, q.queued_at), q.id) as n
            from job_runs q
            where q.state = 'queued' and coalesce(q.run_after, q.queued_at) <= ${dueBy}
              and q.job = any(${names}::text[])
          ),
          chosen as (
            select ranked.id from ranked join lim using (job)
            where ranked.n <= lim.free
            order by ranked.due, ranked.id
            limit ${Math.max(0, capacity)}
          ),
          marked as (
            update job_runs w set waiting_for = v.reason
            from (
              select ranked.id,
                     case when ranked.n <= lim.free then 'instance capacity' else 'job concurrency' end as reason
              from ranked join lim using (job)
              where ranked.id not in (select id from chosen)
            ) v
            where w.id = v.id and w.state = 'queued' and w.waiting_for is distinct from v.reason
          )
          update job_runs set state = 'running', started_at = now(), heartbeat_at = now(),
                              instance = ${instance}, waiting_for = null
          where id in (select id from chosen) and state = 'queued'
          returning ${columns}`,
      ])
      const started = (rows as RunRow[]).map(toRun).sort((a, b) => a.id - b.id)
      return { started, waiting: Math.max(0, total - started.length) }
    },

    /**
     * running → final state; null when something else (a cancel, a rescuer) already ended it. A
     * success that carries a chain queues the chain's next step in the same statement, so a crash
     * can never record the one without the other; `next` is that step's run, with the attempts its
     * job gets (`maxAttempts`, by job name; 1 for a job not listed).
     */
    async finish(
      id: number,
      end: {
        state: 'succeeded' | 'failed' | 'cancelled'
        result?: JsonValue | null
        error?: RunError | null
      },
      maxAttempts: Record<string, number> = {},
    ): Promise<{ run: Run; next: Run | null } | null> {
      const rows = await sql<RunRow[]>`
        with done as (
          update job_runs set state = ${end.state}, finished_at = clock_timestamp(),
                              result = ${end.result === undefined || end.result === null ? null : sql.json(end.result)},
                              error = ${end.error ? sql.json(end.error as unknown as JsonValue) : null}
          where id = ${id} and state = 'running'
          returning *
        ),
        next as (
          insert into job_runs (job, trigger, state, max_attempts, args, parent_id, "then")
          select d."then" -> 0 ->> 'job', 'chain', 'queued',
                 coalesce((${sql.json(maxAttempts)}::jsonb ->> (d."then" -> 0 ->> 'job'))::int, 1),
                 coalesce(d."then" -> 0 -> 'args', '{}'), d.id,
                 case when jsonb_array_length(d."then") > 1 then d."then" - 0 end
          from done d
          where d.state = 'succeeded' and jsonb_array_length(coalesce(d."then", '[]')) > 0
          returning *
        )
        select ${columns} from done
        union all
        select ${columns} from next`
      const run = rows.find((row) => Number(row.id) === id)
      if (!run) return null
      const next = rows.find((row) => Number(row.id) !== id)
      return { run: toRun(run), next: next ? toRun(next) : null }
    },

    /**
     * Records the steps of a run's chain that will not run (the run failed for good, or was
     * cancelled) as skipped runs, each the child of the one before, with code chain_stopped. Once:
     * a run that already has a child is left alone.
     */
    async stopChain(run: Run): Promise<Run[]> {
      const steps = run.then ?? []
      if (steps.length === 0) return []
      const error: RunError = {
        code: 'chain_stopped',
        message: `run ${run.id} (${run.job}) ${run.state === 'cancelled' ? 'was cancelled' : 'failed'}; the rest of its chain did not run`,
      }
      return await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('steward.chain'), hashtext(${String(run.id)}))`
        const [child] = await tx`select 1 from job_runs where parent_id = ${run.id} limit 1`
        if (child) return []
        const skipped: Run[] = []
        let parent = run.id
        for (const [i, step] of steps.entries()) {
          const [row] = await tx<RunRow[]>`
            insert into job_runs (job, trigger, state, max_attempts, args, parent_id, "then", finished_at, error)
            values (${step.job}, 'chain', 'skipped', 1, ${sql.json(step.args as JsonValue)}, ${parent},
                    ${chainJson(steps.slice(i + 1))}, now(), ${sql.json(error as unknown as JsonValue)})
            returning ${columns}`
          const recorded = toRun(row as RunRow)
          skipped.push(recorded)
          parent = recorded.id
        }
        return skipped
      })
    },

    /**
     * A manual run that must be the only one of its job with these args: the queued or running run
     * that already is (created false), or a new queued one. Serialised per job across instances, so
     * two racing requests get one run.
     */
    async insertUnique(run: NewRun): Promise<{ run: Run; created: boolean }> {
      return await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('steward.unique'), hashtext(${run.job}))`
        const [existing] = await tx<RunRow[]>`
          select ${columns} from job_runs
          where job = ${run.job} and state in ('queued', 'running') and args = ${sql.json(run.args as JsonValue)}
          order by id limit 1`
        if (existing) return { run: toRun(existing), created: false }
        const [row] = await tx<RunRow[]>`
          insert into job_runs (job, trigger, state, max_attempts, args, parent_id, "then")
          values (${run.job}, ${run.trigger}, 'queued', ${run.maxAttempts}, ${sql.json(run.args as JsonValue)},
                  ${run.parentId ?? null}, ${chainJson(run.then)})
          returning ${columns}`
        return { run: toRun(row as RunRow), created: true }
      })
    },

    /** Cancels a queued run at once; a running one is flagged and stopped by its executor. */
    async requestCancel(id: number): Promise<Run | null> {
      return one(
        await sql<RunRow[]>`
          update job_runs set
            state = case when state = 'queued' then 'cancelled' else state end,
            finished_at = case when state = 'queued' then now() else finished_at end,
            error = case when state = 'queued'
                         then '{"code":"cancelled","message":"cancelled before it started"}'::jsonb
                         else error end,
            cancel_requested_at = coalesce(cancel_requested_at, now())
          where id = ${id} and state in ('queued', 'running')
          returning ${columns}`,
      )
    },

    /**
     * Marks this instance's runs alive. Returns the ids still running here (a run missing from it was
     * taken away, e.g. failed as abandoned during an outage) and those whose cancel was requested.
     */
    async heartbeat(ids: number[], instance: string): Promise<{ alive: number[]; cancel: number[] }> {
      if (ids.length === 0) return { alive: [], cancel: [] }
      const rows = await sql<{ id: string; cancelRequestedAt: Date | null }[]>`
        update job_runs set heartbeat_at = now()
        where id = any(${ids}::bigint[]) and state = 'running' and instance = ${instance}
        returning id, cancel_requested_at`
      return {
        alive: rows.map((r) => Number(r.id)),
        cancel: rows.filter((r) => r.cancelRequestedAt !== null).map((r) => Number(r.id)),
      }
    },

    /** Fails running runs whose instance stopped heartbeating (crashed, killed, partitioned). */
    async failAbandoned(staleMs: number): Promise<Run[]> {
      const rows = await sql<RunRow[]>`
        update job_runs set state = 'failed', finished_at = now(),
          error = jsonb_build_object(
            'code', 'abandoned',
            'message', format('instance %s stopped reporting for this run (last heartbeat %s)',
                              coalesce(instance, 'unknown'), heartbeat_at))
        where state = 'running' and heartbeat_at < now() - ${staleMs} * interval '1 millisecond'
        returning ${columns}`
      return rows.map(toRun)
    },

    /** The next attempt of a failed run, due after `delayMs`. */
    async insertRetry(failed: Run, delayMs: number, maxAttempts = failed.maxAttempts): Promise<Run> {
      return await insertQueued({
        job: failed.job,
        schedule: failed.schedule,
        trigger: 'retry',
        args: failed.args,
        attempt: failed.attempt + 1,
        maxAttempts,
        retryOf: failed.retryOf ?? failed.id,
        scheduledFor: failed.scheduledFor ? new Date(failed.scheduledFor) : null,
        delayMs,
        parentId: failed.parentId,
        then: failed.then,
      })
    },

    /** The newest run of each of the given schedules. */
    lastBySchedule: (names: string[]) => latestBy('schedule', names),

    /** The newest run of each of the given jobs. */
    lastByJob: (names: string[]) => latestBy('job', names),
  }
}

export type RunStore = ReturnType<typeof createRunStore>
