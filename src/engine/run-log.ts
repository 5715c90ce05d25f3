// A run's own log and progress. What a job logs through ctx.log goes to the process log (pino) as
// before, and to the run's log in the database (run_logs), so an operator can read what a run did,
// and follow it while it runs, from any instance: GET /runs/{id}/logs. Lines are kept in memory and
// written in batches, at most one write per FLUSH_MS per run; a run keeps at most
// RUN_LOG_MAX_LINES lines and RUN_LOG_MAX_BYTES of them, after which one line says how many were
// dropped. Progress (ctx.progress) is stored on the run at most once per PROGRESS_MS, and always at
// the end. Neither may fail a run: a write that fails is retried with the next batch, and given up
// (said in the process log) when the run ends with the database still unreachable.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { JsonValue } from '../lib/json.js'
import type { LogFields, ProgressReport, RunLogger } from './job.js'
import type { RunEvents } from './run-events.js'
import type { Run, RunStore } from './run-store.js'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Told (with the run's id) when a run's log got new lines; followers on every instance LISTEN. */
export const RUN_LOG_CHANNEL = 'steward_run_logs'

/** A run writes its buffered lines at most this often. */
const FLUSH_MS = 250
/** And its progress at most this often. */
const PROGRESS_MS = 1000
/** The most lines one insert carries. */
const BATCH_LINES = 2000
/** A message longer than this is cut (it still counts toward the byte cap as cut). */
const MAX_MESSAGE = 8000

export interface RunLogLimits {
  /** Lines kept per run; 0 keeps none (the process log still gets them). */
  maxLines: number
  /** Bytes of messages and fields kept per run. */
  maxBytes: number
}

export interface LogLine {
  seq: number
  at: string
  level: LogLevel
  message: string
  fields: Record<string, JsonValue> | null
}

export interface StoredProgress {
  done: number
  total: number | null
  unit: string
  updatedAt: string
}

/** The process log as a RunLogger, for code that logs the same way inside and outside a run. */
export function pinoRunLogger(log: FastifyBaseLogger): RunLogger {
  const at =
    (level: LogLevel) =>
    (message: string, fields?: LogFields): void => {
      if (fields) log[level](fields, message)
      else log[level](message)
    }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** Fields as JSON: Errors keep their type, message and code; what cannot be serialised says so. */
export function fieldsJson(fields: LogFields | undefined): Record<string, JsonValue> | null {
  if (!fields) return null
  const keys = Object.keys(fields)
  if (keys.length === 0) return null
  try {
    return JSON.parse(
      JSON.stringify(fields, (_key, value: unknown) => {
        if (value instanceof Error) {
          const { code } = value as Error & { code?: unknown }
          return { type: value.name, message: value.message, ...(code === undefined ? {} : { code }) }
        }
        if (typeof value === 'bigint') return value.toString()
        return value
      }),
    ) as Record<string, JsonValue>
  } catch (err) {
    return { unserializableFields: (err as Error).message }
  }
}

export interface RunLogOptions {
  sql: Sql
  runId: number
  /** The process log, already bound to the run (runId, job). */
  log: FastifyBaseLogger
  limits: RunLogLimits
  /** What time it is; tests pass their own. */
  now?: () => number
}

/**
 * The log and progress of one run in this process. `logger` and `progress` are what the job gets;
 * `close()` writes what is left (and the drop line), and must be awaited before the run's end is
 * recorded, so that whoever sees the run end can read its whole log.
 */
export function createRunLog({ sql, runId, log, limits, now = Date.now }: RunLogOptions) {
  let seq = 0
  let kept = 0
  let bytes = 0
  let dropped = 0
  let buffer: LogLine[] = []
  let timer: NodeJS.Timeout | undefined
  let writing: Promise<void> = Promise.resolve()
  let closed = false
  /** The write failures not yet said in the process log (said once per run). */
  let failedOnce = false

  let progress: StoredProgress | null = null
  let progressStored: StoredProgress | null = null
  let progressAt = 0
  let progressTimer: NodeJS.Timeout | undefined

  function line(level: LogLevel, message: string, fields: Record<string, JsonValue> | null, exempt = false) {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message
    const size = Buffer.byteLength(text) + (fields ? Buffer.byteLength(JSON.stringify(fields)) : 0)
    if (!exempt && (kept >= limits.maxLines || bytes + size > limits.maxBytes)) {
      dropped++
      return
    }
    if (!exempt) {
      kept++
      bytes += size
    }
    buffer.push({ seq: ++seq, at: new Date(now()).toISOString(), level, message: text, fields })
    if (buffer.length >= BATCH_LINES) flush()
    else if (!timer && !closed) {
      timer = setTimeout(flush, FLUSH_MS)
      timer.unref()
    }
  }

  /** Starts writing what is buffered, after the write before it. */
  function flush(): Promise<void> {
    clearTimeout(timer)
    timer = undefined
    if (buffer.length === 0) return writing
    const batch = buffer
    buffer = []
    writing = writing.then(() => write(batch))
    return writing
  }

  async function write(batch: LogLine[]): Promise<void> {
    try {
      await sql.begin(async (tx) => {
        await tx`
          insert into run_logs (run_id, seq, at, level, message, fields)
          select ${runId}, l.seq, l.at, l.level, l.message, l.fields
          from jsonb_to_recordset(${tx.json(batch as unknown as JsonValue)})
            as l(seq int, at timestamptz, level text, message text, fields jsonb)
          on conflict do nothing`
        await tx`select pg_notify(${RUN_LOG_CHANNEL}, ${String(runId)})`
      })
    } catch (err) {
      // Kept for the next batch (in order); given up at close if the database is still away.
      buffer = batch.concat(buffer)
      if (!closed && !timer) {
        timer = setTimeout(flush, FLUSH_MS * 4)
        timer.unref()
      }
      if (!failedOnce) {
        failedOnce = true
        log.warn({ err }, 'could not store lines of the run log; will retry')
      }
      if (closed) throw err
    }
  }

  function report(next: ProgressReport): void {
    const done = Number(next.done)
    if (!Number.isFinite(done) || typeof next.unit !== 'string') return
    const total = next.total === undefined || next.total === null ? null : Number(next.total)
    progress = {
      done,
      total: total !== null && Number.isFinite(total) ? total : null,
      unit: next.unit.slice(0, 40),
      updatedAt: new Date(now()).toISOString(),
    }
    if (progressTimer || closed) return
    const wait = Math.max(0, progressAt + PROGRESS_MS - now())
    progressTimer = setTimeout(() => {
      progressTimer = undefined
      void storeProgress().catch(() => {})
    }, wait)
    progressTimer.unref()
  }

  /** Progress writes one after another, so an older reading never lands after a newer one. */
  let progressWrite: Promise<void> = Promise.resolve()
  function storeProgress(): Promise<void> {
    progressWrite = progressWrite.catch(() => {}).then(writeProgress)
    return progressWrite
  }

  async function writeProgress(): Promise<void> {
    const current = progress
    if (!current || current === progressStored) return
    progressAt = now()
    await sql`
      update job_runs set progress = ${sql.json(current as unknown as JsonValue)}
      where id = ${runId} and state = 'running'`
    progressStored = current
  }

  const at =
    (level: LogLevel) =>
    (message: string, fields?: LogFields): void => {
      if (fields) log[level](fields, message)
      else log[level](message)
      if (limits.maxLines > 0) line(level, String(message), fieldsJson(fields))
    }

  return {
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as RunLogger,

    progress: report,

    /**
     * A line of the runner's own (the run started, ended): kept whatever the caps, so the log
     * always says how the run began and ended.
     */
    note(level: LogLevel, message: string, fields?: LogFields): void {
      if (limits.maxLines > 0) line(level, message, fieldsJson(fields), true)
    },

    /** Lines kept and dropped so far. */
    counts: () => ({ kept, dropped }),

    /**
     * Writes the rest: the last progress, the buffered lines, the drop line and `last` (how the run
     * ended). Retries a failing database a few times; after that the lines are lost (said in the
     * process log), never the run.
     */
    async close(last?: { level: LogLevel; message: string; fields?: LogFields }): Promise<void> {
      closed = true
      clearTimeout(progressTimer)
      progressTimer = undefined
      if (dropped > 0 && limits.maxLines > 0) {
        const why =
          kept >= limits.maxLines ? `RUN_LOG_MAX_LINES (${limits.maxLines})` : `${limits.maxBytes} bytes`
        const message = `${dropped} more lines were not kept: this run's log reached ${why}`
        line('warn', message, { dropped }, true)
      }
      if (last && limits.maxLines > 0) line(last.level, last.message, fieldsJson(last.fields), true)
      for (let attempt = 0; ; attempt++) {
        try {
          await storeProgress()
          await flush()
          return
        } catch (err) {
          if (attempt >= 3) {
            log.error({ err, lines: buffer.length }, 'could not store the end of the run log; lines lost')
            buffer = []
            return
          }
          writing = Promise.resolve()
          await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt))
        }
      }
    },
  }
}

export type RunLog = ReturnType<typeof createRunLog>

/** How often a follower looks again without being told (a lost notification, a run's end). */
const FOLLOW_POLL_MS = 2000
/** Lines read per query while following. */
const FOLLOW_PAGE = 1000

const ENDED = new Set(['succeeded', 'failed', 'cancelled', 'skipped'])

/** Where a followed log goes: each line, then the run once it has ended (the stream then closes). */
export interface LogSink {
  line(line: LogLine): void
  end(run: Run): void
  /** The run was deleted while followed (by hand: pruning takes only ended runs); nothing follows. */
  gone(runId: number): void
}

interface Follower {
  runId: number
  after: number
  sink: LogSink
  ended: Run | null
  busy: boolean
  again: boolean
  done: boolean
}

/** Reading runs' logs, and following them live from any instance (GET /runs/{id}/logs). */
export function createRunLogs({
  sql,
  runs,
  runEvents,
  log,
}: {
  sql: Sql
  runs: RunStore
  runEvents: RunEvents
  log: FastifyBaseLogger
}) {
  const followers = new Map<number, Set<Follower>>()
  let listening: Promise<unknown> | undefined
  let unlisten: (() => Promise<void>) | undefined
  let poll: NodeJS.Timeout | undefined
  let unsubscribe: (() => void) | undefined
  let stopped = false

  async function page(runId: number, after: number, limit: number): Promise<LogLine[]> {
    const rows = await sql<
      { seq: number; at: Date; level: LogLevel; message: string; fields: LogLine['fields'] }[]
    >`
      select seq, at, level, message, fields from run_logs
      where run_id = ${runId} and seq > ${after}
      order by seq limit ${limit}`
    return rows.map((row) => ({ ...row, at: row.at.toISOString() }))
  }

  /** Sends the follower what is new; once its run has ended and every line is sent, ends it. */
  async function pull(follower: Follower): Promise<void> {
    if (follower.busy) {
      follower.again = true
      return
    }
    follower.busy = true
    try {
      do {
        follower.again = false
        // Seen before reading: every line of an ended run was written before its end was.
        const ended = follower.ended
        for (;;) {
          if (follower.done) return
          const lines = await page(follower.runId, follower.after, FOLLOW_PAGE)
          for (const line of lines) follower.sink.line(line)
          if (lines.length > 0) follower.after = (lines[lines.length - 1] as LogLine).seq
          if (lines.length < FOLLOW_PAGE) break
        }
        if (ended && !follower.done) {
          remove(follower)
          follower.sink.end(ended)
        }
      } while (follower.again && !follower.done)
    } catch (err) {
      // The next notification or poll tries again.
      log.warn({ err, runId: follower.runId }, 'could not read a followed run log; will retry')
    } finally {
      follower.busy = false
    }
  }

  function remove(follower: Follower): void {
    follower.done = true
    const set = followers.get(follower.runId)
    set?.delete(follower)
    if (set?.size === 0) followers.delete(follower.runId)
    if (followers.size > 0) return
    clearInterval(poll)
    poll = undefined
    unsubscribe?.()
    unsubscribe = undefined
  }

  function told(runId: number): void {
    for (const follower of followers.get(runId) ?? []) void pull(follower)
  }

  /** LISTENs once, on the first follow; a failure is covered by the poll and tried again next time. */
  function listen(): void {
    if (listening || stopped) return
    listening = sql
      .listen(RUN_LOG_CHANNEL, (payload) => told(Number(payload)))
      .then((subscription) => {
        unlisten = subscription.unlisten
      })
      .catch((err) => {
        log.warn({ err }, 'could not LISTEN for run log lines; followers poll meanwhile')
        listening = undefined
      })
  }

  /** Every few seconds: new lines nobody announced, and the end of runs whose end was not relayed. */
  async function check(): Promise<void> {
    for (const [runId, set] of followers) {
      const waiting = [...set].filter((f) => !f.ended)
      if (waiting.length > 0) {
        // undefined: could not look (the next check will); null: the run is no more.
        const run = await runs.get(runId).catch(() => undefined)
        if (run === null) {
          for (const follower of waiting) {
            remove(follower)
            follower.sink.gone(runId)
          }
          continue
        }
        if (run && ENDED.has(run.state)) for (const f of waiting) f.ended = run
      }
      for (const follower of set) void pull(follower)
    }
  }

  return {
    /** Lines of a run after `after`, oldest first. */
    page,

    /**
     * Sends the lines of `run` after `after`, then each new line as it is written (on any
     * instance), then the run once it has ended. Returns the function that stops following.
     */
    follow(run: Run, after: number, sink: LogSink): () => void {
      const follower: Follower = {
        runId: run.id,
        after,
        sink,
        ended: ENDED.has(run.state) ? run : null,
        busy: false,
        again: false,
        done: stopped,
      }
      if (stopped) {
        queueMicrotask(() => sink.end(run))
        return () => {}
      }
      const set = followers.get(run.id) ?? new Set()
      set.add(follower)
      followers.set(run.id, set)
      listen()
      unsubscribe ??= runEvents.subscribe(
        (changed) => {
          if (!ENDED.has(changed.state)) return
          for (const f of followers.get(changed.id) ?? []) {
            f.ended = changed
            void pull(f)
          }
        },
        { onGap: () => void check() },
      )
      poll ??= setInterval(() => void check().catch(() => {}), FOLLOW_POLL_MS)
      poll.unref()
      void pull(follower)
      return () => remove(follower)
    },

    /** Followers on this instance, for tests. */
    following: () => [...followers.values()].reduce((n, set) => n + set.size, 0),

    async stop(): Promise<void> {
      stopped = true
      for (const set of [...followers.values()]) for (const follower of [...set]) remove(follower)
      await listening
      await unlisten?.().catch(() => {})
    },
  }
}

export type RunLogs = ReturnType<typeof createRunLogs>
