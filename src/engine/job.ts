// What a job is: a name, an args schema, limits, its default schedules, and the function that does
// the work.
import type { PendingQuery, Row, Sql } from 'postgres'
import type { Static, TObject } from 'typebox'
import type { Config } from '../config.js'
import type { TriggerAction } from '../http/auth/access.js'

/**
 * Awaits a query that PostgreSQL cancels (its statement is interrupted on the server) when the
 * signal aborts, so a job waiting on a lock or a long statement stops at its timeout, cancel or
 * shutdown instead of holding its connection until the statement ends.
 */
export async function cancellable<T extends readonly Row[]>(
  query: PendingQuery<T>,
  signal: AbortSignal,
): Promise<T> {
  signal.throwIfAborted()
  const cancel = () => void query.cancel()
  signal.addEventListener('abort', cancel, { once: true })
  try {
    return await query
  } catch (err) {
    // The server's "canceling statement due to user request" is the abort, said less clearly.
    signal.throwIfAborted()
    throw err
  } finally {
    signal.removeEventListener('abort', cancel)
  }
}

/** Structured context of a log line: JSON-able values (an Error is kept as its type, message and code). */
export type LogFields = Record<string, unknown>

/**
 * A run's log: each line goes to the process log (pino) and to the run's own log, which operators
 * read and follow through GET /runs/{id}/logs (see src/engine/run-log.ts).
 */
export interface RunLogger {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
}

/** How far a run has got: `done` of `total` (when known) `unit`s, e.g. bytes, files, rows. */
export interface ProgressReport {
  done: number
  total?: number | null
  unit: string
}

export interface JobContext<Args> {
  args: Args
  /** Aborted on timeout, cancel or shutdown; pass it to anything that can stop early. */
  signal: AbortSignal
  log: RunLogger
  /** Reports progress: cheap to call often; stored at most once a second, and at the end. */
  progress(report: ProgressReport): void
  sql: Sql
  runId: string
  attempt: number
  config: Config
}

/** A schedule a job brings with it: created once, when the job is first registered (see seedDefaults). */
export interface DefaultSchedule {
  name: string
  cron: string
  args?: Record<string, unknown>
  /** Jobs to run after each successful fire, in order (see src/engine/chains.ts). */
  then?: ReadonlyArray<{ job: string; args?: Record<string, unknown> }>
}

export interface JobDefinition<A extends TObject = TObject> {
  name: string
  description: string
  args: A
  timeoutMs: number
  maxAttempts: number
  /** How many of its runs may run at once across every instance (default 1); PATCH /jobs/{name} overrides. */
  concurrency?: number
  /** Its default schedules; an operator may edit or delete them, and a deleted one stays deleted. */
  schedules?: readonly DefaultSchedule[]
  /**
   * What a manual run with these (validated) args amounts to, when some runs of the job need a
   * higher role than triggering it does (TRIGGER_ACCESS in src/http/auth/access.ts says who).
   */
  triggerAction?(args: Static<A>, config: Config): TriggerAction
  /** The result is stored on the run as JSON (undefined properties dropped, as JSON.stringify does). */
  run(ctx: JobContext<Static<A>>): Promise<unknown>
}

export type AnyJob = JobDefinition<TObject>

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/

export function defineJob<A extends TObject>(job: JobDefinition<A>): JobDefinition<A> {
  if (!NAME.test(job.name)) throw new Error(`job name "${job.name}" must be kebab-case`)
  if (!(job.timeoutMs > 0)) throw new Error(`job ${job.name}: timeoutMs must be positive`)
  if (!(Number.isInteger(job.maxAttempts) && job.maxAttempts >= 1)) {
    throw new Error(`job ${job.name}: maxAttempts must be an integer >= 1`)
  }
  const concurrency = job.concurrency ?? 1
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 100)) {
    throw new Error(`job ${job.name}: concurrency must be an integer from 1 to 100`)
  }
  return job
}
