// Run state changes of the whole cluster, as they are committed. A trigger on job_runs (migration
// 0007) NOTIFYs every insert and state change on the steward_runs channel, whichever instance or
// statement made it; each instance LISTENs once (postgres.js re-subscribes by itself after a
// connection loss) and fans the changes out to its subscribers: SSE clients, the alert loop.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { JsonValue } from '../lib/json.js'
import { type Run, toRun } from './run-store.js'

export const RUNS_CHANNEL = 'steward_runs'

type Listener = (run: Run) => void

export interface SubscriberHooks {
  /** The app stops relaying (closing): end the stream. */
  onEnd?: () => void
  /**
   * The LISTEN connection was lost and is back: changes committed in between were not relayed, so
   * whoever needs every change should re-read what it shows.
   */
  onGap?: () => void
}

interface Subscriber extends SubscriberHooks {
  listener: Listener
}

/** What the trigger sends: the row itself, or (too big, or a bulk statement) the id(s) to read. */
type Notification = { run: Record<string, unknown> } | { id: number } | { ids: number[] }

/** The row as row_to_json writes it (snake_case, timestamps as text) → the API's Run. */
export function runFromRowJson(row: Record<string, unknown>): Run {
  const date = (value: unknown) => (typeof value === 'string' ? new Date(value) : null)
  return toRun({
    id: String(row.id),
    job: row.job as string,
    schedule: (row.schedule as string | null) ?? null,
    trigger: row.trigger as Run['trigger'],
    state: row.state as Run['state'],
    attempt: row.attempt as number,
    maxAttempts: row.max_attempts as number,
    retryOf: row.retry_of === null || row.retry_of === undefined ? null : String(row.retry_of),
    args: (row.args ?? {}) as Record<string, unknown>,
    scheduledFor: date(row.scheduled_for),
    queuedAt: date(row.queued_at) as Date,
    runAfter: date(row.run_after),
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
    result: (row.result ?? null) as JsonValue | null,
    error: (row.error ?? null) as Run['error'],
    waitingFor: (row.waiting_for ?? null) as Run['waitingFor'],
    parentId: row.parent_id === null || row.parent_id === undefined ? null : String(row.parent_id),
    then: (row.then ?? null) as Run['then'],
    instance: (row.instance as string | null) ?? null,
    progress: (row.progress ?? null) as Run['progress'],
  })
}

export function createRunEvents({ sql, log }: { sql: Sql; log: FastifyBaseLogger }) {
  const listeners = new Set<Subscriber>()
  /** Told that something changed (no rows read), and of gaps: caches that only need to drop. */
  const watchers = new Set<() => void>()
  let unlisten: (() => Promise<void>) | undefined
  let retry: NodeJS.Timeout | undefined
  let stopped = true
  /** Closing: new subscribers (a request that raced the shutdown) are ended at once. */
  let closed = false
  /** Notifications are handled one after another, so subscribers see changes in commit order. */
  let queue: Promise<void> = Promise.resolve()
  let listens = 0

  function emit(run: Run): void {
    for (const { listener } of listeners) {
      try {
        listener(run)
      } catch (err) {
        log.error({ err, runId: run.id }, 'run event listener failed')
      }
    }
  }

  async function read(ids: number[]): Promise<Run[]> {
    const rows = await sql`select * from job_runs where id = any(${ids}::bigint[]) order by id`
    return rows.map((row) => toRun(row as never))
  }

  async function handle(payload: string): Promise<void> {
    // Nobody to tell: do not read rows for nothing (a bulk insert can announce a million ids).
    if (listeners.size === 0) return
    const message = JSON.parse(payload) as Notification
    if ('run' in message) return emit(runFromRowJson(message.run))
    const ids = 'id' in message ? [message.id] : message.ids
    for (const run of await read(ids)) emit(run)
  }

  function onNotify(payload: string): void {
    for (const watcher of watchers) watcher()
    queue = queue
      .then(() => handle(payload))
      .catch((err) => log.warn({ err }, 'could not relay a run change'))
  }

  /** LISTENs, retrying every few seconds while the database cannot be reached. */
  async function subscribe(): Promise<void> {
    if (stopped) return
    try {
      // postgres.js calls onlisten on every (re-)LISTEN: after the first, there may have been a gap.
      const subscription = await sql.listen(RUNS_CHANNEL, onNotify, () => {
        if (++listens > 1) {
          log.warn('run change relay reconnected; changes in between were not relayed')
          for (const watcher of watchers) watcher()
          for (const { onGap } of listeners) onGap?.()
        }
      })
      if (stopped) await subscription.unlisten()
      else unlisten = subscription.unlisten
    } catch (err) {
      log.warn({ err }, 'could not LISTEN for run changes; retrying in 5 s')
      retry = setTimeout(() => void subscribe(), 5000)
      retry.unref()
    }
  }

  return {
    /** Calls `listener` with each run change, from any instance, until the returned function runs. */
    subscribe(listener: Listener, hooks: SubscriberHooks = {}): () => void {
      const subscriber = { listener, ...hooks }
      if (closed) {
        if (hooks.onEnd) queueMicrotask(hooks.onEnd)
        return () => {}
      }
      listeners.add(subscriber)
      return () => listeners.delete(subscriber)
    },

    subscribers: () => listeners.size,

    /**
     * Calls `changed` at once on every run change notification, from any instance, and after a
     * reconnect (changes may have been missed), until the returned function runs. It must not throw.
     */
    watch(changed: () => void): () => void {
      watchers.add(changed)
      return () => watchers.delete(changed)
    },

    async start(): Promise<void> {
      stopped = false
      await subscribe()
    },

    async stop(): Promise<void> {
      stopped = true
      closed = true
      clearTimeout(retry)
      const ending = [...listeners]
      listeners.clear()
      for (const { onEnd } of ending) onEnd?.()
      await unlisten?.().catch(() => {})
      unlisten = undefined
      await queue
    },
  }
}

export type RunEvents = ReturnType<typeof createRunEvents>
