// The scheduler: one cron timer per enabled schedule, kept in step with the schedules table. A fire
// is claimed in the database (see RunStore.claimFires) so several instances fire it once; fires
// nobody could claim (downtime, a database outage, a stalled event loop) are settled afterwards.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import { type CronTimer, startCron } from './cron.js'
import type { AnyJob } from './job.js'
import type { JobSettings } from './job-settings.js'
import type { FireClaim, RunError, RunStore, RunTrigger } from './run-store.js'
import type { Runner } from './runner.js'
import { compileCron, SCHEDULE_CHANNEL, type Schedule, type ScheduleStore } from './schedule-store.js'

interface Entry {
  schedule: Schedule
  /** What the timer was built from; a change means a new timer. */
  key: string
  timer: CronTimer
  /** When this process armed the timer. */
  armedAt: Date
  /** Every fire up to here is accounted for (claimed or settled); unset until first checked. */
  verifiedTo?: Date
}

/** At most this many missed fires of one gap are recorded, the latest ones. */
const MAX_MISSED_RECORDED = 100

/** How often fires are checked against the table, and how old a fire must be to be checked. */
const VERIFY_INTERVAL_MS = 2000
const VERIFY_SETTLE_MS = 3000

const MISSED: RunError = { code: 'missed', message: 'no instance could fire it at the time' }

export interface SchedulerDeps {
  sql: Sql
  runs: RunStore
  schedules: ScheduleStore
  runner: Runner
  jobs: Map<string, AnyJob>
  settings: JobSettings
  log: FastifyBaseLogger
  /** Safety net for missed notifications and unsettled fires (ms). */
  reconcileIntervalMs?: number
  /** What time it is, for catch-up; tests pass a fixed clock. */
  clock?: () => Date
}

export function createScheduler(deps: SchedulerDeps) {
  const { runs, schedules, runner, jobs, settings, log } = deps
  const clock = deps.clock ?? (() => new Date())
  const entries = new Map<string, Entry>()
  let running = false
  const intervals: NodeJS.Timeout[] = []
  let unlisten: (() => Promise<void>) | undefined
  let reconciling: Promise<void> | undefined
  let again = false

  /** Fires waiting for the next claim: all those due in one turn of the event loop go together. */
  let pending: Array<{ claim: FireClaim; resolve: () => void; reject: (err: unknown) => void }> = []

  /** Claims a fire (with the others of this instant) and starts it if this instance won it. */
  function fire(name: string, scheduledFor: Date, trigger: RunTrigger, skip?: RunError): Promise<void> {
    const schedule = entries.get(name)?.schedule
    const job = schedule && jobs.get(schedule.job)
    if (!schedule || !job) return Promise.resolve()
    const claim: FireClaim = {
      run: {
        job: job.name,
        schedule: name,
        trigger,
        args: schedule.args,
        maxAttempts: settings.limits(job).maxAttempts,
        scheduledFor,
        then: schedule.then,
      },
      overlap: schedule.overlap,
      skip,
    }
    return new Promise((resolve, reject) => {
      if (pending.length === 0) setImmediate(() => track(claimPending()))
      pending.push({ claim, resolve, reject })
    })
  }

  /** Claims in flight, so stop() can wait for them. */
  const claiming = new Set<Promise<void>>()
  function track(work: Promise<void>): void {
    claiming.add(work)
    void work.finally(() => claiming.delete(work))
  }

  /**
   * One claim transaction for every pending fire, so a hundred schedules due at the same instant
   * cost one round of statements rather than a hundred. A schedule's second fire to run (possible
   * only after a stall) goes in a later round, since the overlap check of a statement cannot see the
   * rows that statement inserts.
   */
  async function claimPending(): Promise<void> {
    let batch = pending
    pending = []
    while (batch.length > 0) {
      const round: typeof batch = []
      const later: typeof batch = []
      const toRun = new Set<string>()
      for (const item of batch) {
        const name = item.claim.run.schedule
        if (item.claim.skip) round.push(item)
        else if (toRun.has(name)) later.push(item)
        else {
          toRun.add(name)
          round.push(item)
        }
      }
      batch = later
      try {
        const outcomes = await runs.claimFires(round.map((item) => item.claim))
        for (const item of round) item.resolve()
        const won = outcomes.flatMap((claim) => (claim.outcome === 'taken' ? [] : [claim]))
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
      } catch (err) {
        for (const item of round) item.reject(err)
      }
    }
  }

  /**
   * Settles fires nobody claimed: with catchUp 'latest' the most recent one runs (trigger
   * catch-up) unless a later fire already did the chore; the others are recorded as skipped with
   * reason 'missed'. Claims go through the unique key, so however many instances notice the same
   * missed fires, each is settled once.
   */
  async function settle(entry: Entry, missed: Date[], madeUp: boolean): Promise<void> {
    const latest = missed[missed.length - 1]
    if (!latest) return
    const name = entry.schedule.name
    const runLatest = entry.schedule.catchUp === 'latest' && !madeUp
    log.warn({ schedule: name, missed: missed.length, latest, runLatest }, 'settling missed fires')
    // Claimed together, in one transaction.
    await Promise.all(
      missed.map((at) => fire(name, at, 'catch-up', runLatest && at === latest ? undefined : MISSED)),
    )
  }

  /**
   * Checks every fire older than a few seconds against the table and settles those nobody claimed,
   * whatever the cause: Steward was down (the first check of a timer looks back to the schedule's
   * latest claimed fire, or its last edit), the database was, a claim failed or hung, or the event
   * loop stalled past a fire. One query per pass for all schedules.
   */
  async function verify(): Promise<void> {
    const fresh = [...entries.values()].filter((e) => !e.verifiedTo)
    if (fresh.length > 0) {
      const last = await runs.lastFiresBefore(
        fresh.map((e) => ({ schedule: e.schedule.name, before: e.armedAt })),
      )
      for (const e of fresh) {
        const since = Math.max(last.get(e.schedule.name)?.getTime() ?? 0, Date.parse(e.schedule.updatedAt))
        e.verifiedTo = new Date(since)
      }
    }
    const now = clock()
    const until = new Date(now.getTime() - VERIFY_SETTLE_MS)
    const due = [...entries.values()].filter((e) => e.verifiedTo && e.verifiedTo < until)
    if (due.length === 0) return
    const from = new Date(Math.min(...due.map((e) => (e.verifiedTo as Date).getTime())))
    // Up to now, not `until`: a fire claimed after the missed ones means the chore ran since.
    const claimed = await runs.firesBetween(
      due.map((e) => e.schedule.name),
      from,
      now,
    )
    for (const entry of due) {
      const cron = compileCron(entry.schedule.cron, entry.schedule.timezone)
      const have = claimed.get(entry.schedule.name) ?? []
      const missed = cron
        .between(entry.verifiedTo as Date, until, MAX_MISSED_RECORDED)
        .filter((d) => !have.includes(d.getTime()))
      const latest = missed[missed.length - 1]
      if (latest)
        await settle(
          entry,
          missed,
          have.some((ms) => ms > latest.getTime()),
        )
      entry.verifiedTo = until
    }
  }

  let verifying: Promise<void> | undefined
  function verifyLogged(): Promise<void> {
    verifying ??= verify()
      .catch((err) => log.warn({ err }, 'could not check for missed fires yet; will retry'))
      .finally(() => {
        verifying = undefined
      })
    return verifying
  }

  function arm(schedule: Schedule): Entry {
    const cron = compileCron(schedule.cron, schedule.timezone)
    const name = schedule.name
    // Fires node-cron reports as missed (a stalled event loop) are found and settled by verify().
    const timer = startCron(cron, {
      onFire: (at) => fire(name, at, 'schedule'),
      onError: (err) => log.warn({ err, schedule: name }, 'could not claim a fire; it will be settled later'),
    })
    return { schedule, key: '', timer, armedAt: clock() }
  }

  async function reconcileOnce(): Promise<void> {
    const wanted = (await schedules.list()).filter((s) => s.enabled && jobs.has(s.job))
    const seen = new Set<string>()
    for (const schedule of wanted) {
      seen.add(schedule.name)
      const key = `${schedule.job}|${schedule.cron}|${schedule.timezone}`
      const entry = entries.get(schedule.name)
      if (entry && entry.key === key) {
        entry.schedule = schedule
        continue
      }
      entry?.timer.stop()
      try {
        entries.set(schedule.name, { ...arm(schedule), key })
      } catch (err) {
        entries.delete(schedule.name)
        log.error({ err, schedule: schedule.name }, 'schedule has an invalid cron; not firing it')
      }
    }
    for (const [name, entry] of entries) {
      if (!seen.has(name)) {
        entry.timer.stop()
        entries.delete(name)
      }
    }
  }

  /** Brings timers in line with the table. Calls during a pass queue exactly one more pass. */
  function reconcile(): Promise<void> {
    if (reconciling) {
      again = true
      return reconciling
    }
    reconciling = (async () => {
      try {
        // A change announced while the pass checks for missed fires gets a pass of its own too.
        do {
          do {
            again = false
            if (running) await reconcileOnce()
          } while (again)
          if (running) await verifyLogged()
        } while (again)
      } finally {
        reconciling = undefined
      }
    })()
    return reconciling
  }

  const reconcileLogged = () =>
    reconcile().catch((err) => log.error({ err }, 'could not load schedules; will retry'))

  return {
    reconcile,

    isRunning: () => running,

    /** The schedules this process is firing right now. */
    armed: () => [...entries.keys()],

    async start(): Promise<void> {
      running = true
      await reconcile()
      // postgres.js re-subscribes after a reconnect and calls onlisten again: reconcile then too,
      // since notifications sent while disconnected are lost.
      const subscription = await deps.sql.listen(
        SCHEDULE_CHANNEL,
        () => void reconcileLogged(),
        () => void reconcileLogged(),
      )
      unlisten = subscription.unlisten
      intervals.push(setInterval(reconcileLogged, deps.reconcileIntervalMs ?? 30_000))
      intervals.push(setInterval(verifyLogged, VERIFY_INTERVAL_MS))
      for (const interval of intervals) interval.unref()
    },

    async stop(): Promise<void> {
      running = false
      for (const interval of intervals.splice(0)) clearInterval(interval)
      await reconciling?.catch(() => {})
      await verifying
      await Promise.allSettled([...claiming])
      for (const entry of entries.values()) entry.timer.stop()
      entries.clear()
      await unlisten?.().catch(() => {})
    },
  }
}

export type Scheduler = ReturnType<typeof createScheduler>
