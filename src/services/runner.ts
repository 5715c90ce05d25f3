// The runner executes runs in this process: queued → running → succeeded | failed | cancelled,
// with a timeout per job, cancellation through an AbortSignal, and a record of every outcome.
// A job that throws fails its run; nothing a job does can take the server down.
import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../config.js'
import type { AnyJob, JsonValue } from '../jobs/define.js'
import { validateArgs } from './args.js'
import { Conflict, NotFound } from './errors.js'
import type { Run, RunError, RunsService, RunTrigger } from './runs.js'

/** Why a run's signal was aborted; becomes the run's error code. */
export class RunAbort extends Error {
  constructor(
    readonly code: 'timeout' | 'cancelled' | 'interrupted',
    message: string,
  ) {
    super(message)
  }
}

export interface RunnerDeps {
  sql: Sql
  runs: RunsService
  jobs: Map<string, AnyJob>
  config: Config
  log: FastifyBaseLogger
}

type Outcome = { state: 'succeeded' | 'failed' | 'cancelled'; result?: JsonValue | null; error?: RunError }

export function createRunner({ sql, runs, jobs, config, log }: RunnerDeps) {
  const events = new EventEmitter<{ run: [Run] }>()
  const active = new Map<number, AbortController>()
  const inFlight = new Set<Promise<void>>()
  let accepting = true

  const publish = (run: Run | null) => {
    if (run) events.emit('run', run)
  }

  function jobOf(name: string): AnyJob {
    const job = jobs.get(name)
    if (!job) throw new NotFound(`job "${name}" does not exist; known jobs: ${[...jobs.keys()].join(', ')}`)
    return job
  }

  /** Starts executing an already-inserted queued run; returns at once. */
  function start(run: Run): void {
    const job = jobs.get(run.job)
    const work = (job ? execute(job, run) : failUnknownJob(run)).catch((err) =>
      log.error({ err, runId: run.id, job: run.job }, 'runner could not record a run outcome'),
    )
    inFlight.add(work)
    void work.finally(() => inFlight.delete(work))
  }

  async function failUnknownJob(run: Run): Promise<void> {
    await runs.markRunning(run.id, config.instanceId)
    publish(
      await runs.finish(run.id, {
        state: 'failed',
        error: { code: 'unknown_job', message: `job "${run.job}" is not registered` },
      }),
    )
  }

  async function execute(job: AnyJob, queued: Run): Promise<void> {
    const run = await runs.markRunning(queued.id, config.instanceId)
    if (!run) return // cancelled before it started
    publish(run)
    const controller = new AbortController()
    active.set(run.id, controller)
    const timer = setTimeout(
      () =>
        controller.abort(new RunAbort('timeout', `run exceeded the job's timeout of ${job.timeoutMs} ms`)),
      job.timeoutMs,
    )
    const runLog = log.child({ runId: run.id, job: job.name })
    runLog.info(
      { state: 'running', attempt: run.attempt, trigger: run.trigger, schedule: run.schedule },
      'run started',
    )
    let outcome: Outcome
    try {
      const result = await untilAborted(
        job.run({
          args: run.args,
          signal: controller.signal,
          log: runLog,
          sql,
          runId: String(run.id),
          attempt: run.attempt,
          config,
        }),
        controller.signal,
      )
      outcome = { state: 'succeeded', result: toJson(result) }
    } catch (err) {
      outcome = failure(err, controller.signal)
    } finally {
      clearTimeout(timer)
      active.delete(run.id)
    }
    const finished = await persist(() => runs.finish(run.id, outcome))
    publish(finished)
    const level = outcome.state === 'succeeded' ? 'info' : 'warn'
    runLog[level](
      { state: outcome.state, durationMs: finished?.durationMs, error: outcome.error },
      'run finished',
    )
  }

  return {
    events,

    /** Validates args, records a queued run and starts it. */
    async trigger(name: string, rawArgs: unknown, trigger: RunTrigger = 'manual'): Promise<Run> {
      const job = jobOf(name)
      const args = validateArgs(job.args, rawArgs)
      if (!accepting) throw new Conflict('the server is shutting down; trigger the job on another instance')
      const run = await runs.insertQueued({ job: job.name, trigger, args, maxAttempts: job.maxAttempts })
      publish(run)
      start(run)
      return run
    },

    start,

    /** Cancels a queued run at once, a running one in this process through its signal. */
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
        return run
      }
      const controller = active.get(id)
      if (controller) {
        controller.abort(new RunAbort('cancelled', 'cancelled by request'))
        await waitUntilEnded(id, 2000)
      }
      return (await runs.get(id)) ?? run
    },

    activeCount: () => active.size,

    /** Stops accepting work, lets running jobs finish for graceMs, then aborts them. */
    async stop(graceMs: number): Promise<void> {
      accepting = false
      const all = Promise.allSettled([...inFlight])
      const graceful = await Promise.race([all.then(() => true), sleep(graceMs).then(() => false)])
      if (graceful) return
      for (const controller of active.values()) {
        controller.abort(new RunAbort('interrupted', 'the server shut down while the run was in progress'))
      }
      await Promise.race([Promise.allSettled([...inFlight]), sleep(5000)])
    },
  }

  async function waitUntilEnded(id: number, ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (active.has(id) && Date.now() < deadline) await sleep(20)
  }
}

export type Runner = ReturnType<typeof createRunner>

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
  const { code } = error as Error & { code?: unknown }
  return {
    state: 'failed',
    error: {
      code: typeof code === 'string' ? code : 'error',
      message: error.message.slice(0, 4000) || error.name,
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

/** Recording an outcome must survive a short database blip: retry with backoff for ~30 s. */
async function persist<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write()
    } catch (err) {
      if (attempt >= 6) throw err
      await sleep(500 * 2 ** attempt)
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
