// The scheduler: one cron timer per enabled schedule, kept in step with the schedules table. A fire
// is claimed in the database (see RunsService.claimFire) so several instances fire it once.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { AnyJob } from '../jobs/define.js'
import { type CronTimer, startCron } from './cron.js'
import type { Runner } from './runner.js'
import type { RunError, RunsService, RunTrigger } from './runs.js'
import { compileCron, SCHEDULE_CHANNEL, type Schedule, type SchedulesService } from './schedules.js'

interface Entry {
  schedule: Schedule
  /** What the timer was built from; a change means a new timer. */
  key: string
  timer: CronTimer
  /** Latest on-time fire handled here, to tell whether missed fires were already made up for. */
  lastFire?: Date
  /** Fires node-cron reported missed (event loop stalled past them), settled together. */
  missed: Date[]
}

/** At most this many missed fires of one gap are recorded, the latest ones. */
const MAX_MISSED_RECORDED = 100

/** Catch-up leaves fires younger than this to the timers that are firing them. */
const CATCH_UP_SETTLE_MS = 2000

export interface SchedulerDeps {
  sql: Sql
  runs: RunsService
  schedules: SchedulesService
  runner: Runner
  jobs: Map<string, AnyJob>
  log: FastifyBaseLogger
  /** Safety net for missed notifications (ms). */
  reconcileIntervalMs?: number
  /** What time it is, for catch-up; tests pass a fixed clock. */
  clock?: () => Date
}

export function createScheduler(deps: SchedulerDeps) {
  const { runs, schedules, runner, jobs, log } = deps
  const clock = deps.clock ?? (() => new Date())
  const entries = new Map<string, Entry>()
  let running = false
  let interval: NodeJS.Timeout | undefined
  let unlisten: (() => Promise<void>) | undefined
  let reconciling: Promise<void> | undefined
  let again = false

  async function fire(name: string, scheduledFor: Date, trigger: RunTrigger, skip?: RunError): Promise<void> {
    const schedule = entries.get(name)?.schedule
    const job = schedule && jobs.get(schedule.job)
    if (!schedule || !job) return
    const claim = await runs.claimFire(
      {
        job: job.name,
        schedule: name,
        trigger,
        args: schedule.args,
        maxAttempts: job.maxAttempts,
        scheduledFor,
      },
      { overlap: schedule.overlap, skip },
    )
    if (claim.outcome === 'taken') return
    runner.events.emit('run', claim.run)
    if (claim.outcome === 'skipped') {
      log.warn({ runId: claim.run.id, schedule: name, reason: claim.run.error?.code }, 'fire skipped')
      return
    }
    runner.start(claim.run)
  }

  /**
   * Settles fires that passed without a claim: with catchUp 'latest' the most recent one runs
   * (trigger catch-up) unless an on-time fire already did the chore since; the others are recorded
   * as skipped with reason 'missed'. Claims go through the unique key, so however many instances
   * notice the same missed fires, each is settled once.
   */
  async function settle(name: string, missed: Date[]): Promise<void> {
    const entry = entries.get(name)
    const latest = missed[missed.length - 1]
    if (!entry || !latest) return
    const madeUp = entry.lastFire !== undefined && entry.lastFire > latest
    const runLatest = entry.schedule.catchUp === 'latest' && !madeUp
    const reason = { code: 'missed', message: 'no instance could fire it at the time' }
    for (const at of runLatest ? missed.slice(0, -1) : missed) await fire(name, at, 'catch-up', reason)
    if (runLatest) await fire(name, latest, 'catch-up')
  }

  /**
   * node-cron reports fires it could not make in time (a stalled event loop, a suspended machine)
   * one by one, just before the on-time fire of the same beat if there is one: collect them briefly.
   */
  function settleReported(name: string): void {
    const entry = entries.get(name)
    if (!entry) return
    const missed = entry.missed.splice(0).slice(-MAX_MISSED_RECORDED)
    settle(name, missed).catch((err) => log.error({ err, schedule: name }, 'could not record missed fires'))
  }

  /**
   * Finds fires no instance claimed: downtime, a database outage, a failed claim. Looks from the
   * schedule's latest claimed fire (or its last edit, whichever is later) up to a moment ago; fires
   * happening right now are left to the timers.
   */
  async function catchUp(): Promise<void> {
    const now = clock().getTime()
    const schedules = [...entries.values()].map((e) => e.schedule)
    const lastFires = await runs.lastFires(schedules.map((s) => s.name))
    for (const schedule of schedules) {
      const since = Math.max(lastFires.get(schedule.name)?.getTime() ?? 0, Date.parse(schedule.updatedAt))
      const until = now - CATCH_UP_SETTLE_MS
      if (until <= since) continue
      const cron = compileCron(schedule.cron, schedule.timezone)
      const missed = cron.between(new Date(since), new Date(until), MAX_MISSED_RECORDED)
      if (missed.length === 0) continue
      log.warn(
        { schedule: schedule.name, missed: missed.length, latest: missed.at(-1) },
        'settling missed fires',
      )
      await settle(schedule.name, missed)
    }
  }

  function arm(schedule: Schedule): CronTimer {
    const cron = compileCron(schedule.cron, schedule.timezone)
    const name = schedule.name
    return startCron(cron, {
      onFire: (at) => {
        const entry = entries.get(name)
        if (entry) entry.lastFire = at
        return fire(name, at, 'schedule')
      },
      onMissed: (at) => {
        const entry = entries.get(name)
        if (!entry) return
        if (entry.missed.push(at) === 1) setTimeout(() => settleReported(name), 50)
      },
      onError: (err) => log.error({ err, schedule: name }, 'scheduled fire failed'),
    })
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
        entries.set(schedule.name, { schedule, key, timer: arm(schedule), missed: [] })
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
        do {
          again = false
          if (running) await reconcileOnce()
          if (running) await catchUp()
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
      interval = setInterval(reconcileLogged, deps.reconcileIntervalMs ?? 30_000)
      interval.unref()
    },

    async stop(): Promise<void> {
      running = false
      clearInterval(interval)
      await reconciling?.catch(() => {})
      for (const entry of entries.values()) entry.timer.stop()
      entries.clear()
      await unlisten?.().catch(() => {})
    },
  }
}

export type Scheduler = ReturnType<typeof createScheduler>
