// The scheduler. Each schedule keeps its next unclaimed fire in the database (schedules.next_fire_at).
// Claiming fires moves it on with a compare-and-set, in the transaction that records the runs, so
// however many instances try, each fire is claimed once (RunStore.claimFires). The work follows the
// fires, not the number of schedules:
// - Every few seconds an instance reads the schedules due within the next LOOKAHEAD_MS (an index
//   range scan) and arms a timer for each it owns. A schedule's owner is chosen among the live
//   instances by a stable hash (rendezvous hashing), so instances share the fires instead of all
//   racing for each, and an instance joining or leaving moves only its share.
// - Every second every instance reads the schedules whose next fire is more than TAKEOVER_GRACE_MS
//   past (normally none) and claims them: the fires of an owner that died, stalled or lost its
//   database are taken over, and fires nobody could claim (Steward was down, the database was) are
//   settled: with catchUp 'latest' the most recent one runs, the others are recorded as skipped
//   with reason 'missed'.
// - An edit reaches every instance by NOTIFY and reloads only that schedule.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { AnyJob } from './job.js'
import type { JobSettings } from './job-settings.js'
import type { Advance, FireClaim, RunError, RunStore, RunTrigger } from './run-store.js'
import type { Runner } from './runner.js'
import { compileCron, type DueSchedule, SCHEDULE_CHANNEL, type ScheduleStore } from './schedule-store.js'

export interface SchedulerTiming {
  /** How far ahead timers are armed. */
  lookaheadMs: number
  /** How often the schedules due within the lookahead are read. */
  loadEveryMs: number
  /** How often overdue fires are looked for. */
  overdueEveryMs: number
  /** How late a fire must be before any instance, not only its owner, claims it. */
  takeoverGraceMs: number
  /** How often an instance says it is alive, and reads who else is. */
  beatEveryMs: number
  /** An instance not seen for this long no longer owns schedules. */
  instanceTtlMs: number
}

export const DEFAULT_TIMING: SchedulerTiming = {
  lookaheadMs: 10_000,
  loadEveryMs: 5_000,
  overdueEveryMs: 1_000,
  takeoverGraceMs: 1_500,
  beatEveryMs: 2_000,
  instanceTtlMs: 6_000,
}

/**
 * A fire claimed later than this was missed: it is recorded as skipped, except that with catchUp
 * 'latest' the newest missed fire runs (as a catch-up) when no fire on time follows it. Fires
 * claimed sooner run as ordinary fires, however many of them (a stalled owner, a takeover).
 */
const MISSED_AFTER_MS = 3_000

/** At most this many missed fires of one gap are recorded, the latest ones. */
const MAX_MISSED_RECORDED = 100

/** Schedules read per pass: due within the lookahead, and overdue. */
const LOAD_LIMIT = 5_000
const OVERDUE_LIMIT = 100

const MISSED: RunError = { code: 'missed', message: 'no instance could fire it at the time' }
const OVERLAPPED: RunError = {
  code: 'overlap',
  message: 'an earlier fire of this schedule, claimed at the same time, was still queued',
}

export interface SchedulerDeps {
  sql: Sql
  runs: RunStore
  schedules: ScheduleStore
  runner: Runner
  jobs: Map<string, AnyJob>
  settings: JobSettings
  log: FastifyBaseLogger
  instanceId: string
  /** What time it is; tests pass a fixed clock. */
  clock?: () => Date
  timing?: Partial<SchedulerTiming>
}

/** What the scheduler did, for tests and benchmarks: the periodic work must not grow with schedules. */
export interface SchedulerStats {
  loads: number
  rowsLoaded: number
  overdueScans: number
  rowsOverdue: number
  claims: number
  firesClaimed: number
}

interface Armed {
  due: number
  timer: NodeJS.Timeout
}

/** FNV-1a, 32 bits, with MurmurHash3's finaliser: stable, and well spread even for short keys. */
function hash(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The live instance that owns a schedule: the highest hash of (instance, schedule). */
export function ownerOf(schedule: string, live: readonly string[]): string | undefined {
  let owner: string | undefined
  let best = -1
  for (const id of live) {
    const score = hash(`${id}\n${schedule}`)
    if (score > best || (score === best && owner !== undefined && id < owner)) {
      best = score
      owner = id
    }
  }
  return owner
}

export function createScheduler(deps: SchedulerDeps) {
  const { sql, runs, schedules, runner, jobs, settings, log, instanceId } = deps
  const clock = deps.clock ?? (() => new Date())
  const timing = { ...DEFAULT_TIMING, ...deps.timing }
  const jobNames = [...jobs.keys()]
  const stats: SchedulerStats = {
    loads: 0,
    rowsLoaded: 0,
    overdueScans: 0,
    rowsOverdue: 0,
    claims: 0,
    firesClaimed: 0,
  }

  /** Schedules due within the lookahead, as last read or advanced here. */
  const upcoming = new Map<string, DueSchedule>()
  /** Timers of the upcoming schedules this instance owns. */
  const armed = new Map<string, Armed>()
  /** Schedules waiting for the next claim, or being claimed: never claimed twice at once here. */
  const claiming = new Set<string>()
  let pending: DueSchedule[] = []
  const inFlight = new Set<Promise<void>>()

  let live: string[] = [instanceId]
  let running = false
  const intervals: NodeJS.Timeout[] = []
  let unlisten: (() => Promise<void>) | undefined

  /** Logs a failing loop once a minute, and its recovery once. */
  const failing = new Map<string, number>()
  function trouble(what: string, err: unknown): void {
    const last = failing.get(what)
    if (last === undefined || Date.now() - last > 60_000) {
      log.warn({ err }, `scheduler: ${what} failed; will retry`)
      failing.set(what, Date.now())
    }
  }
  function recovered(what: string): void {
    if (failing.delete(what)) log.info(`scheduler: ${what} works again`)
  }
  async function guarded(what: string, work: () => Promise<void>): Promise<void> {
    try {
      await work()
      recovered(what)
    } catch (err) {
      trouble(what, err)
    }
  }

  /**
   * Schedules whose overdue fires this instance took over from a live owner, until when: it fires
   * them itself meanwhile, so a dead owner's per-second schedule misses one fire, not every other
   * one until the owner stops counting as live. An owner that was only slow races for them for a
   * few seconds; each fire still goes to one instance.
   */
  const adopted = new Map<string, number>()
  const owns = (name: string) => {
    if ((ownerOf(name, live) ?? instanceId) === instanceId) return true
    const until = adopted.get(name)
    if (until !== undefined && until > Date.now()) return true
    adopted.delete(name)
    return false
  }

  function disarm(name: string): void {
    const entry = armed.get(name)
    if (entry) clearTimeout(entry.timer)
    armed.delete(name)
  }

  function forget(name: string): void {
    disarm(name)
    upcoming.delete(name)
  }

  /** Keeps an upcoming schedule, with a timer at its next fire when this instance owns it. */
  function place(schedule: DueSchedule): void {
    const name = schedule.name
    upcoming.set(name, schedule)
    if (!running || !owns(name) || claiming.has(name)) {
      disarm(name)
      return
    }
    const due = schedule.nextFireAt.getTime()
    if (armed.get(name)?.due === due) return
    disarm(name)
    const timer = setTimeout(
      () => {
        armed.delete(name)
        const current = upcoming.get(name)
        if (current) claim([current])
      },
      Math.max(0, due - clock().getTime()),
    )
    timer.unref()
    armed.set(name, { due, timer })
  }

  /** Queues schedules for the next claim: all those due in one turn of the event loop go together. */
  function claim(list: DueSchedule[]): Promise<void> {
    const fresh = list.filter((s) => !claiming.has(s.name))
    if (fresh.length === 0) return Promise.resolve()
    for (const s of fresh) {
      claiming.add(s.name)
      disarm(s.name)
    }
    const first = pending.length === 0
    pending.push(...fresh)
    if (!first) return Promise.resolve()
    const work = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const batch = pending
      pending = []
      try {
        await claimBatch(batch)
      } finally {
        for (const s of batch) claiming.delete(s.name)
      }
    })
    inFlight.add(work)
    void work.finally(() => inFlight.delete(work))
    return work
  }

  /**
   * Claims every fire of the given schedules from their next fire up to now, in one transaction:
   * those due in the last few seconds run, older ones were missed (see MISSED_AFTER_MS). Each
   * schedule's next fire then moves past now, unless another instance moved it first.
   */
  async function claimBatch(batch: DueSchedule[]): Promise<void> {
    const now = clock()
    const fires: FireClaim[] = []
    const advances: Advance[] = []
    const claimed: Array<{ schedule: DueSchedule; next: Date }> = []
    for (const schedule of batch) {
      const job = jobs.get(schedule.job)
      if (!job) continue
      let cron: ReturnType<typeof compileCron>
      try {
        cron = compileCron(schedule.cron, schedule.timezone)
      } catch (err) {
        log.error({ err, schedule: schedule.name }, 'schedule has an invalid cron; not firing it')
        continue
      }
      const from = schedule.nextFireAt
      const upTo = new Date(Math.max(now.getTime(), from.getTime()))
      const due = cron.between(new Date(from.getTime() - 1), upTo, MAX_MISSED_RECORDED)
      const next = cron.next(upTo)
      advances.push({ schedule: schedule.name, from, to: next })
      claimed.push({ schedule, next })
      const cutoff = now.getTime() - MISSED_AFTER_MS
      const missed = due.filter((at) => at.getTime() < cutoff)
      const onTime = due.filter((at) => at.getTime() >= cutoff)
      const latestMissed = missed[missed.length - 1]
      if (latestMissed)
        log.warn(
          { schedule: schedule.name, missed: missed.length, latest: latestMissed, catchUp: schedule.catchUp },
          'settling missed fires',
        )
      for (const at of missed) {
        const catchUp = at === latestMissed && onTime.length === 0 && schedule.catchUp === 'latest'
        fires.push(fireOf(schedule, job, at, 'catch-up', catchUp ? undefined : MISSED))
      }
      // Several fires on time at once: one statement cannot see its own inserts, so with overlap
      // 'skip' the first runs and the others are skipped as they would have been one by one.
      onTime.forEach((at, i) => {
        const overlapped = i > 0 && schedule.overlap === 'skip'
        fires.push(fireOf(schedule, job, at, 'schedule', overlapped ? OVERLAPPED : undefined))
      })
    }
    if (advances.length === 0) return
    let outcomes: Awaited<ReturnType<RunStore['claimFires']>>
    try {
      outcomes = await runs.claimFires(fires, advances)
    } catch (err) {
      // The fires stay due in the table: the scan for overdue fires claims them once it can.
      trouble('claiming fires', err)
      return
    } finally {
      for (const schedule of batch) claiming.delete(schedule.name)
    }
    recovered('claiming fires')
    stats.claims++
    const lost = new Set<string>()
    outcomes.forEach((outcome, i) => {
      if (outcome.outcome === 'taken') lost.add((fires[i] as FireClaim).run.schedule)
    })
    const won = outcomes.flatMap((o) => (o.outcome === 'taken' ? [] : [o]))
    stats.firesClaimed += won.length
    // Announced (queued, or skipped) before they start running; a listener's failure is its own.
    for (const claim of won) {
      try {
        runner.events.emit('run', claim.run)
      } catch (err) {
        log.error({ err, runId: claim.run.id }, 'run event listener failed')
      }
      if (claim.outcome === 'skipped')
        log.warn(
          { runId: claim.run.id, schedule: claim.run.schedule, reason: claim.run.error?.code },
          'fire skipped',
        )
    }
    if (won.some((claim) => claim.outcome === 'claimed')) runner.pumpSoon()
    const horizon = clock().getTime() + timing.lookaheadMs
    const adoptUntil = Date.now() + timing.instanceTtlMs + timing.beatEveryMs
    for (const { schedule, next } of claimed) {
      if (lost.has(schedule.name)) continue
      if (!owns(schedule.name)) adopted.set(schedule.name, adoptUntil)
      if (next.getTime() < horizon) place({ ...schedule, nextFireAt: next })
      else forget(schedule.name)
    }
    // Another instance got there first (or the schedule changed): read where it stands now.
    if (lost.size > 0) await refresh([...lost])
  }

  function fireOf(
    schedule: DueSchedule,
    job: AnyJob,
    scheduledFor: Date,
    trigger: RunTrigger,
    skip?: RunError,
  ): FireClaim {
    return {
      run: {
        job: job.name,
        schedule: schedule.name,
        trigger,
        args: schedule.args,
        maxAttempts: settings.limits(job).maxAttempts,
        scheduledFor,
        then: schedule.then,
      },
      overlap: schedule.overlap,
      skip,
    }
  }

  /** Computes next fires nobody has computed yet (new or edited schedules), logging unusable ones. */
  async function fill(): Promise<void> {
    const { rejected } = await schedules.fillUnknown(clock())
    for (const name of rejected)
      log.error({ schedule: name }, 'schedule has a cron this version rejects; not firing it')
  }

  /** Reads the schedules due within the lookahead and (re)arms the timers of those owned here. */
  async function load(): Promise<void> {
    await fill()
    const horizon = new Date(clock().getTime() + timing.lookaheadMs)
    const rows = await schedules.due(horizon, jobNames, LOAD_LIMIT)
    stats.loads++
    stats.rowsLoaded += rows.length
    const seen = new Set<string>()
    for (const row of rows) {
      seen.add(row.name)
      // A fire this instance claimed meanwhile is newer than what the read saw.
      const known = upcoming.get(row.name)
      place(known && known.nextFireAt > row.nextFireAt ? known : row)
    }
    for (const name of upcoming.keys()) if (!seen.has(name) && !claiming.has(name)) forget(name)
  }

  /** Claims the fires that are overdue, whoever owns them. */
  async function overdue(): Promise<void> {
    for (;;) {
      const rows = await schedules.due(
        new Date(clock().getTime() - timing.takeoverGraceMs),
        jobNames,
        OVERDUE_LIMIT,
      )
      stats.overdueScans++
      stats.rowsOverdue += rows.length
      if (rows.length > 0) await claim(rows)
      if (rows.length < OVERDUE_LIMIT || !running) return
    }
  }

  /** Reads the named schedules again (they changed): arms, moves or drops their timers. */
  async function refresh(names: string[]): Promise<void> {
    await fill()
    const rows = await schedules.firing(names, jobNames)
    const horizon = clock().getTime() + timing.lookaheadMs
    const found = new Set<string>()
    for (const row of rows) {
      if (row.nextFireAt.getTime() >= horizon) continue
      found.add(row.name)
      place(row)
    }
    for (const name of names) if (!found.has(name) && !claiming.has(name)) forget(name)
  }

  /** Says this instance is alive and reads which others are; a change of members moves owners. */
  async function beat(): Promise<void> {
    const rows = await sql<{ id: string }[]>`
      with me as (
        insert into scheduler_instances (id) values (${instanceId})
        on conflict (id) do update set seen_at = now()
        returning id
      ), gone as (
        delete from scheduler_instances where seen_at < now() - interval '1 hour'
      )
      select id from scheduler_instances where seen_at > now() - ${timing.instanceTtlMs} * interval '1 millisecond'
      union select id from me
      order by id`
    const next = rows.map((row) => row.id)
    if (next.join('\n') === live.join('\n')) return
    log.info({ instances: next }, 'scheduler instances changed; sharing schedules among them')
    live = next
    adopted.clear()
    for (const schedule of [...upcoming.values()]) place(schedule)
  }

  /** One pass at a time; calls during a pass get one more pass after it. */
  let reconciling: Promise<void> | undefined
  let again = false
  function reconcile(): Promise<void> {
    if (reconciling) {
      again = true
      return reconciling
    }
    reconciling = (async () => {
      try {
        do {
          again = false
          if (!running) return
          await load()
          await overdue()
        } while (again)
      } finally {
        reconciling = undefined
      }
    })()
    return reconciling
  }

  /** Names announced by NOTIFY, refreshed together. */
  let changed = new Set<string>()
  function onChange(name: string): void {
    if (!name) {
      void guarded('loading schedules', reconcile)
      return
    }
    if (changed.size === 0)
      setImmediate(() => {
        const names = [...changed]
        changed = new Set()
        void guarded('loading changed schedules', () => refresh(names))
      })
    changed.add(name)
  }

  return {
    /** Reads schedules and claims overdue fires now (it also happens every few seconds). */
    reconcile,

    isRunning: () => running,

    /** The schedules this process has a timer for: those due soon that it owns. */
    armed: () => [...armed.keys()],

    /** The schedules this process knows to be due within the lookahead, owned here or not. */
    upcoming: () => [...upcoming.keys()],

    /** The live instances sharing the schedules, as last read. */
    instances: () => [...live],

    stats: (): SchedulerStats => ({ ...stats }),

    async start(): Promise<void> {
      running = true
      await guarded('announcing this instance', beat)
      await guarded('loading schedules', reconcile)
      // postgres.js re-subscribes after a reconnect and calls onlisten again: reload everything
      // then, since notifications sent while disconnected are lost.
      const subscription = await sql.listen(SCHEDULE_CHANNEL, onChange, () => {
        if (running) void guarded('loading schedules', reconcile)
      })
      unlisten = subscription.unlisten
      const every = (ms: number, what: string, work: () => Promise<void>) =>
        intervals.push(setInterval(() => void guarded(what, work), ms))
      every(timing.beatEveryMs, 'announcing this instance', beat)
      every(timing.loadEveryMs, 'loading schedules', load)
      every(timing.overdueEveryMs, 'claiming overdue fires', overdue)
      for (const interval of intervals) interval.unref()
    },

    async stop(): Promise<void> {
      running = false
      for (const interval of intervals.splice(0)) clearInterval(interval)
      for (const name of [...armed.keys()]) disarm(name)
      await reconciling?.catch(() => {})
      await Promise.allSettled([...inFlight])
      upcoming.clear()
      await unlisten?.().catch(() => {})
      // Leave at once, so the others take this instance's schedules without waiting for it to expire.
      await sql`delete from scheduler_instances where id = ${instanceId}`.catch(() => {})
    },
  }
}

export type Scheduler = ReturnType<typeof createScheduler>
