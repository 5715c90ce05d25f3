// The runner executes runs in this process: queued → running → succeeded | failed | cancelled,
// with a timeout per job, cancellation through an AbortSignal, retries with backoff, chains, and a
// record of every outcome. A job that throws fails its run; nothing a job does can take the server
// down. Runs start through one door, pump(): it takes queued runs as far as the job's concurrency
// (cluster-wide) and this instance's MAX_CONCURRENT_RUNS allow, oldest first; a finishing run pumps
// again, so a waiting run starts as soon as a slot frees.
import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../config.js'
import { retryDelayMs } from '../lib/backoff.js'
import { Conflict, NotFound } from '../lib/errors.js'
import type { JsonValue } from '../lib/json.js'
import { validateArgs } from './args.js'
import { type ChainStep, validateChain } from './chains.js'
import type { AnyJob } from './job.js'
import type { JobSettings } from './job-settings.js'
import { createRunLog } from './run-log.js'
import type { Run, RunError, RunStore, RunTrigger } from './run-store.js'

/** Why a run's signal was aborted; becomes the run's error code. */
export class RunAbort extends Error {
  constructor(
    readonly code: 'timeout' | 'cancelled' | 'interrupted',
    message: string,
  ) {
    super(message)
  }
}

export const CANCEL_CHANNEL = 'steward_cancel'
/** "Queued runs may be waiting for a slot": sent when this instance cannot take them all. */
export const QUEUE_CHANNEL = 'steward_queue'

/** Refuses (throws) a manual trigger its caller may not make, given the job and its validated args. */
export type Authorize = (job: AnyJob, args: Record<string, unknown>) => void | Promise<void>

export interface RunnerDeps {
  sql: Sql
  runs: RunStore
  jobs: Map<string, AnyJob>
  settings: JobSettings
  config: Config
  log: FastifyBaseLogger
}

export interface TriggerOptions {
  trigger?: RunTrigger
  authorize?: Authorize
  /** Return the queued or running run of this job with the same args instead of adding one. */
  unique?: boolean
  /** Jobs to run after this one succeeds. */
  then?: ReadonlyArray<{ job: string; args?: Record<string, unknown> }>
}

type Outcome = {
  state: 'succeeded' | 'failed' | 'cancelled'
  result?: JsonValue | null
  error?: RunError
  /** The job said another attempt cannot succeed (an error with `retryable: false`). */
  final?: boolean
}

export function createRunner({ sql, runs, jobs, settings, config, log }: RunnerDeps) {
  const events = new EventEmitter<{ run: [Run] }>()
  const active = new Map<number, AbortController>()
  /** Runs this instance took, until their outcome is recorded: its share of MAX_CONCURRENT_RUNS. */
  const executing = new Set<number>()
  /** Executions (bookkeeping included) and job bodies, which may outlive an aborted execution. */
  const inFlight = new Set<Promise<unknown>>()
  const bodies = new Set<Promise<unknown>>()
  let accepting = true

  const publish = (run: Run | null) => {
    if (run) events.emit('run', run)
  }

  const track = (set: Set<Promise<unknown>>, work: Promise<unknown>) => {
    set.add(work)
    void work.finally(() => set.delete(work)).catch(() => {})
  }

  function jobOf(name: string): AnyJob {
    const job = jobs.get(name)
    if (!job) throw new NotFound(`job "${name}" does not exist; known jobs: ${[...jobs.keys()].join(', ')}`)
    return job
  }

  let pumping: Promise<void> | undefined
  let pumpAgain = false
  let tellOthers = false
  /** The smallest `settledMs` asked for since the last claim. */
  let settled = Number.POSITIVE_INFINITY

  /**
   * Starts the queued runs this instance may take now. One pump at a time; a call during one makes
   * it go round once more. `local` pumps (a trigger here, a run finishing here, a poll) tell the
   * other instances when this one filled up, so a run it could not take starts elsewhere at once; a
   * pump answering that never tells anyone, so full instances cannot wake each other forever.
   * `settledMs`: leave runs due for less than that to others (a periodic poll leaves a fresh run to
   * the instance that queued it, which starts it at once).
   */
  function pump(origin: 'local' | 'remote' = 'local', settledMs = 0): Promise<void> {
    if (origin === 'local') tellOthers = true
    settled = Math.min(settled, settledMs)
    if (pumping) {
      pumpAgain = true
      return pumping
    }
    pumping = (async () => {
      try {
        do {
          pumpAgain = false
          const notify = tellOthers
          const settledMs = settled
          tellOthers = false
          settled = Number.POSITIVE_INFINITY
          if (!accepting) return
          const free = config.maxConcurrentRuns - executing.size
          // Full, it still looks: the runs left waiting are marked with what they wait for.
          const { started, waiting } = await runs.claimQueued(
            config.instanceId,
            Math.max(0, free),
            settings.concurrencies(),
            settledMs,
          )
          for (const run of started) {
            executing.add(run.id)
            launch(() => execute(run), run)
          }
          // Full, with runs left waiting: another instance may have room for them.
          if (notify && waiting > 0 && started.length >= free)
            await sql`select pg_notify(${QUEUE_CHANNEL}, ${config.instanceId})`
        } while (pumpAgain)
      } finally {
        pumping = undefined
      }
    })()
    return pumping
  }

  /** pump(), for callers that do not wait: a failure (the database is down) waits for the next poll. */
  function pumpSoon(origin: 'local' | 'remote' = 'local'): void {
    pump(origin).catch((err) => log.warn({ err }, 'could not start queued runs; will retry'))
  }

  function launch(work: () => Promise<void>, run: Run): void {
    track(
      inFlight,
      work()
        .catch((err) => couldNotRecord(err, run))
        .finally(() => {
          executing.delete(run.id)
          // A slot is free: the next run waiting for it starts here, or (shutting down) elsewhere.
          if (accepting) pumpSoon()
          else void sql`select pg_notify(${QUEUE_CHANNEL}, ${config.instanceId})`.catch(() => {})
        }),
    )
  }

  function couldNotRecord(err: unknown, run: Run): void {
    log.error({ err, runId: run.id, job: run.job }, 'runner could not record a run outcome')
  }

  async function execute(run: Run): Promise<void> {
    publish(run)
    const job = jobs.get(run.job)
    if (!job) {
      const error = {
        code: 'unknown_job',
        message: `job "${run.job}" is not registered on ${config.instanceId}`,
      }
      const ended = await runs.finish(run.id, { state: 'failed', error })
      publish(ended?.run ?? null)
      if (ended) await settleFailure(ended.run, true)
      return
    }
    const controller = new AbortController()
    active.set(run.id, controller)
    const { timeoutMs } = settings.limits(job)
    const timer = setTimeout(
      () => controller.abort(new RunAbort('timeout', `run exceeded the job's timeout of ${timeoutMs} ms`)),
      timeoutMs,
    )
    const runLog = log.child({ runId: run.id, job: job.name })
    const started = { attempt: run.attempt, trigger: run.trigger, schedule: run.schedule }
    runLog.info({ state: 'running', ...started }, 'run started')
    // The run's own log: what the job writes, and how the run began and ended.
    const journal = createRunLog({ sql, runId: run.id, log: runLog, limits: config.runLog })
    journal.note('info', `run started on ${config.instanceId}`, { ...started, maxAttempts: run.maxAttempts })
    let outcome: Outcome
    try {
      const body = job.run({
        args: run.args,
        signal: controller.signal,
        log: journal.logger,
        progress: journal.progress,
        sql,
        runId: String(run.id),
        attempt: run.attempt,
        config,
      })
      track(bodies, body)
      outcome = { state: 'succeeded', result: toJson(await untilAborted(body, controller.signal)) }
    } catch (err) {
      outcome = failure(err, controller.signal)
    } finally {
      clearTimeout(timer)
      active.delete(run.id)
    }
    // Written before the end is recorded: whoever sees the run end can read its whole log.
    await journal.close({
      level: outcome.state === 'succeeded' ? 'info' : outcome.state === 'failed' ? 'error' : 'warn',
      message: `job ${outcome.state}`,
      fields: outcome.error ? { error: outcome.error } : undefined,
    })
    const ended = await persist(() => runs.finish(run.id, outcome, maxAttemptsByJob()))
    const level = outcome.state === 'succeeded' ? 'info' : 'warn'
    runLog[level](
      { state: outcome.state, durationMs: ended?.run.durationMs, error: outcome.error },
      'run finished',
    )
    if (!ended) return
    publish(ended.run)
    if (ended.next) {
      runLog.info({ next: ended.next.id, job: ended.next.job }, 'chain continues')
      publish(ended.next)
    }
    if (ended.run.state !== 'succeeded') await settleFailure(ended.run, outcome.final === true)
  }

  /** The attempts each job's runs get, for a chain's next step. */
  const maxAttemptsByJob = () =>
    Object.fromEntries([...jobs.values()].map((job) => [job.name, settings.limits(job).maxAttempts]))

  /**
   * After a run failed or was cancelled: the next attempt when one is due, otherwise the end of its
   * chain (the steps not run are recorded as skipped).
   */
  async function settleFailure(ended: Run, final: boolean): Promise<void> {
    const retry = ended.state === 'failed' && !final ? await retryIfAllowed(ended) : null
    if (retry) return
    for (const skipped of await persist(() => runs.stopChain(ended))) publish(skipped)
  }

  /**
   * Queues the next attempt of a failed run while attempts remain. An interrupted run (shutdown)
   * did nothing wrong, so it always gets one more attempt.
   */
  async function retryIfAllowed(failed: Run): Promise<Run | null> {
    const interrupted = failed.error?.code === 'interrupted'
    if (!interrupted && failed.attempt >= failed.maxAttempts) return null
    const maxAttempts = interrupted ? Math.max(failed.maxAttempts, failed.attempt + 1) : failed.maxAttempts
    const delay = retryDelayMs(failed.attempt, config.retryBaseMs, config.retryMaxMs)
    const retry = await persist(() => runs.insertRetry(failed, delay, maxAttempts))
    log.info({ runId: retry.id, retryOf: failed.id, attempt: retry.attempt, delayMs: delay }, 'retry queued')
    publish(retry)
    return retry
  }

  /** Aborts a run executing in this process; false when it is not here. */
  function abortLocal(id: number, reason: RunAbort): boolean {
    const controller = active.get(id)
    if (!controller) return false
    controller.abort(reason)
    return true
  }

  async function waitUntilEnded(id: number, ms: number): Promise<Run | null> {
    const deadline = Date.now() + ms
    for (;;) {
      const run = await runs.get(id)
      if (!run || (run.state !== 'running' && run.state !== 'queued') || Date.now() > deadline) return run
      await sleep(50)
    }
  }

  return {
    events,
    pump,
    pumpSoon,
    settleFailure,
    abortLocal,

    /**
     * Validates args (and the chain's), records a queued run and starts it when a slot is free.
     * With `unique`, the queued or running run of the job with the same args is returned instead
     * (created false) when there is one.
     */
    async trigger(
      name: string,
      rawArgs: unknown,
      { trigger = 'manual', authorize, unique = false, then }: TriggerOptions = {},
    ): Promise<{ run: Run; created: boolean }> {
      const job = jobOf(name)
      const args = validateArgs(job.args, rawArgs)
      const chain: ChainStep[] | null = validateChain(jobs, then)
      // After validation, so the decision sees the args the runs would get (defaults filled in).
      await authorize?.(job, args)
      for (const step of chain ?? []) await authorize?.(jobOf(step.job), step.args)
      if (!accepting) throw new Conflict('the server is shutting down; trigger the job on another instance')
      const queued = {
        job: job.name,
        trigger,
        args,
        maxAttempts: settings.limits(job).maxAttempts,
        then: chain,
      }
      const result = unique
        ? await runs.insertUnique(queued)
        : { run: await runs.insertQueued(queued), created: true }
      if (result.created) {
        publish(result.run)
        pumpSoon()
      }
      return result
    },

    /**
     * Cancels a queued run at once; a running one is aborted through its signal, here or on the
     * instance running it (told through NOTIFY, and through its next heartbeat as a fallback).
     */
    async cancel(id: number): Promise<Run> {
      const run = await runs.requestCancel(id)
      if (!run) {
        const existing = await runs.get(id)
        if (!existing) throw new NotFound(`run ${id} does not exist`)
        throw new Conflict(
          `run ${id} already ended (${existing.state}); only queued or running runs can be cancelled`,
        )
      }
      if (run.state === 'cancelled') {
        publish(run)
        await settleFailure(run, true)
        return run
      }
      const reason = new RunAbort('cancelled', 'cancelled by request')
      if (!abortLocal(id, reason)) await sql`select pg_notify(${CANCEL_CHANNEL}, ${String(id)})`
      return (await waitUntilEnded(id, 3000)) ?? run
    },

    activeIds: () => [...active.keys()],

    /** How many runs this instance has taken and not yet recorded the end of. */
    executingCount: () => executing.size,

    accepting: () => accepting,

    /** Stops accepting work, lets running jobs finish for graceMs, then aborts them. */
    async stop(graceMs: number): Promise<void> {
      accepting = false
      await pumping?.catch(() => {})
      const finished = await settleWithin(inFlight, graceMs)
      if (!finished) {
        for (const controller of active.values()) {
          controller.abort(new RunAbort('interrupted', 'the server shut down while the run was in progress'))
        }
        await settleWithin(inFlight, 5000)
      }
      // Aborted jobs clean up after themselves (child processes get SIGTERM, then SIGKILL after
      // 10 s); wait for that so nothing they started outlives the process.
      await settleWithin(bodies, 12_000)
    },
  }
}

export type Runner = ReturnType<typeof createRunner>

/** True when every promise in the set settled within `ms`; the timer never outlives the wait. */
async function settleWithin(set: Set<Promise<unknown>>, ms: number): Promise<boolean> {
  if (set.size === 0) return true
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([Promise.allSettled([...set]).then(() => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Settles with the job's promise, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

function failure(err: unknown, signal: AbortSignal): Outcome {
  const reason = signal.aborted ? signal.reason : err
  if (reason instanceof RunAbort) {
    return {
      state: reason.code === 'cancelled' ? 'cancelled' : 'failed',
      error: { code: reason.code, message: reason.message },
    }
  }
  const error = reason instanceof Error ? reason : new Error(String(reason))
  const { code, retryable } = error as Error & { code?: unknown; retryable?: unknown }
  const final = retryable === false
  return {
    state: 'failed',
    final,
    error: {
      code: typeof code === 'string' ? code : 'error',
      message: error.message.slice(0, 4000) || error.name,
      // Recorded, so that whoever reads the run (alerts, the dashboard) knows no retry is coming.
      ...(final ? { final } : {}),
    },
  }
}

/** A result must survive a JSON round trip to be stored; anything else is reported, not lost. */
function toJson(result: unknown): JsonValue | null {
  if (result === undefined) return null
  try {
    return JSON.parse(JSON.stringify(result)) as JsonValue
  } catch (err) {
    return { unserializableResult: String((err as Error).message) }
  }
}

/** Recording an outcome must survive a short database outage: retry with backoff for ~60 s. */
async function persist<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write()
    } catch (err) {
      if (attempt >= 7) throw err
      await sleep(500 * 2 ** attempt)
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
