// The supervisor keeps runs honest across instances: it heartbeats this process's running runs,
// starts due queued runs (retries, runs waiting for a slot, runs whose starter died before starting
// them) when another instance says slots may be free and on every poll, fails runs whose instance
// stopped heartbeating (then retries them), and relays cancel requests made on other instances. Every loop survives errors and database outages and carries on.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../config.js'
import type { RunStore } from './run-store.js'
import { CANCEL_CHANNEL, QUEUE_CHANNEL, RunAbort, type Runner } from './runner.js'

export interface SupervisorDeps {
  sql: Sql
  runs: RunStore
  runner: Runner
  config: Config
  log: FastifyBaseLogger
}

/**
 * A poll starts queued runs due for at least this long: a fresh one is started at once by the
 * instance that queued it (a trigger, a fire it won, a retry it timed), not raced for by every poll.
 */
const POLL_SETTLED_MS = 1000

export function createSupervisor({ sql, runs, runner, config, log }: SupervisorDeps) {
  const timers: NodeJS.Timeout[] = []
  const wakeups = new Set<NodeJS.Timeout>()
  const unlisten: Array<() => Promise<void>> = []
  let polling: Promise<void> | undefined
  let stopped = false
  /**
   * Since when the database has answered without interruption. Nobody can heartbeat during an
   * outage, so right after one every heartbeat looks stale: rescue only once live instances have
   * had a full stale interval to report in.
   */
  let reachableSince: number | undefined

  const reachable = () => {
    reachableSince ??= Date.now()
  }
  const unreachable = (err: unknown, what: string) => {
    reachableSince = undefined
    log.warn({ err }, `${what} failed; will retry`)
  }

  async function heartbeat(): Promise<void> {
    const ids = runner.activeIds()
    if (ids.length === 0) return
    try {
      const { alive, cancel } = await runs.heartbeat(ids, config.instanceId)
      reachable()
      for (const id of cancel) runner.abortLocal(id, new RunAbort('cancelled', 'cancelled by request'))
      for (const id of ids.filter((i) => !alive.includes(i))) {
        runner.abortLocal(id, new RunAbort('interrupted', 'the run was taken over after missed heartbeats'))
      }
    } catch (err) {
      unreachable(err, 'heartbeat')
    }
  }

  async function pollOnce(): Promise<void> {
    if (stopped) return
    try {
      await runner.pump('local', POLL_SETTLED_MS)
      reachable()
      if (Date.now() - (reachableSince ?? Date.now()) >= config.runStaleMs) await rescue()
    } catch (err) {
      unreachable(err, 'polling for due runs')
    }
  }

  async function rescue(): Promise<void> {
    for (const run of await runs.failAbandoned(config.runStaleMs)) {
      log.warn({ runId: run.id, job: run.job, instance: run.instance }, 'abandoned run failed')
      runner.events.emit('run', run)
      await runner.settleFailure(run, false)
    }
  }

  /** One poll at a time; a poll requested meanwhile is covered by the next tick. */
  function poll(): Promise<void> {
    polling ??= pollOnce().finally(() => {
      polling = undefined
    })
    return polling
  }

  /** A retry queued here is taken as soon as it is due, not at the next tick. */
  function wakeAt(runAfter: string | null): void {
    if (!runAfter || stopped) return
    const timer = setTimeout(
      () => {
        wakeups.delete(timer)
        runner.pumpSoon()
      },
      Math.max(0, Date.parse(runAfter) - Date.now()) + 20,
    )
    wakeups.add(timer)
  }

  const onRun = (run: { state: string; runAfter: string | null }) => {
    if (run.state === 'queued') wakeAt(run.runAfter)
  }

  return {
    poll,

    async start(): Promise<void> {
      stopped = false
      runner.events.on('run', onRun)
      const cancels = await sql.listen(CANCEL_CHANNEL, (payload) => {
        runner.abortLocal(Number(payload), new RunAbort('cancelled', 'cancelled by request'))
      })
      // Another instance filled up or is stopping: queued runs may wait for a slot this one has.
      const queue = await sql.listen(QUEUE_CHANNEL, (from) => {
        if (from !== config.instanceId) runner.pumpSoon('remote')
      })
      unlisten.push(cancels.unlisten, queue.unlisten)
      timers.push(setInterval(() => void heartbeat(), config.runHeartbeatMs))
      timers.push(setInterval(() => void poll(), config.runPollMs))
      for (const timer of timers) timer.unref()
      void poll()
    },

    async stop(): Promise<void> {
      stopped = true
      runner.events.off('run', onRun)
      for (const timer of [...timers, ...wakeups]) clearTimeout(timer)
      timers.length = 0
      wakeups.clear()
      await polling
      await Promise.all(unlisten.splice(0).map((stop) => stop().catch(() => {})))
    },

    /** Keeps heartbeating while running jobs finish during shutdown. */
    heartbeat,
  }
}

export type Supervisor = ReturnType<typeof createSupervisor>
