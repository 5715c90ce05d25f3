// The GET /events streams open on this instance. Each is a subscriber of the run change feed
// (src/engine/run-events.ts) that must not outlive its client or its token:
// - it ends when its response closes, whenever that happens: the close listener is attached before
//   anything is subscribed, a response that closed already (the client hung up while it was being
//   authenticated) gets no subscription at all, and ending twice is harmless;
// - its token is re-read from the database at once when a revoke is announced (on this instance or
//   another: tokens.ts hears them on TOKEN_CHANNEL) and every 5 s in case an announcement was
//   lost; a revoked token's streams get a last `event: end` and close;
// - one token may hold only so many streams (EVENTS_STREAMS_PER_TOKEN), counted on this instance:
//   each holds a connection, a subscriber and a buffer.
// One ping timer and one check timer serve all streams, and run only while some are open.
import { PassThrough } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import type { RunEvents } from '../engine/run-events.js'
import { hashToken, type Principal, type Tokens } from '../http/auth/tokens.js'

/** A client that lets this much pile up unread is dropped (it can reconnect), not buffered for ever. */
const MAX_BUFFERED = 4 * 1024 * 1024
/** How often the tokens of open streams are re-read when no revoke was announced. */
const CHECK_MS = 5000

const GAP =
  'event: gap\ndata: {"message":"the server lost its database connection for a while; changes in between are not in this stream"}\n\n'
const REVOKED = 'event: end\ndata: {"message":"the token of this stream was revoked"}\n\n'

export interface EventStreamsDeps {
  runEvents: RunEvents
  tokens: Tokens
  /** Streams one token may hold open on this instance. */
  perToken: number
  pingMs: number
  checkMs?: number
  log: FastifyBaseLogger
}

/** What a stream needs of its HTTP response (reply.raw): whether, and when, it closed. */
export interface Connection {
  readonly destroyed: boolean
  once(event: 'close', listener: () => void): unknown
}

export interface StreamRequest {
  /** The bearer token the request was authenticated with, to re-check while the stream is open. */
  token: string
  principal: Principal
  /** Only runs of this job. */
  job?: string
  connection: Connection
  log: FastifyBaseLogger
  /**
   * What the stream carries instead of run changes: given the stream, it writes events and may end
   * it; returns the function that stops it (called however the stream ends).
   */
  feed?: (stream: FeedStream) => () => void
}

/** A stream as a feed sees it. */
export interface FeedStream {
  write(text: string): void
  /** Writes `last`, if given, and closes the stream. */
  end(last?: string): void
}

type Entry = FeedStream

/** The streams of one token. */
interface Holder {
  name: string
  entries: Set<Entry>
}

export function createEventStreams(deps: EventStreamsDeps) {
  const { runEvents, tokens, perToken, pingMs, checkMs = CHECK_MS, log } = deps
  /** By the token's sha256 (hex): the token itself is not kept. */
  const holders = new Map<string, Holder>()
  let ping: NodeJS.Timeout | undefined
  let check: NodeJS.Timeout | undefined
  /** A periodic check still waiting for the database: the next tick does not pile another on. */
  let checking = false

  const all = () => [...holders.values()].flatMap((holder) => [...holder.entries])

  function add(key: string, name: string, entry: Entry): void {
    const holder = holders.get(key) ?? { name, entries: new Set() }
    holder.entries.add(entry)
    holders.set(key, holder)
    if (ping) return
    ping = setInterval(() => {
      for (const stream of all()) stream.write(': ping\n\n')
    }, pingMs)
    check = setInterval(() => {
      if (checking) return
      checking = true
      void recheck().finally(() => {
        checking = false
      })
    }, checkMs)
  }

  function remove(key: string, entry: Entry): void {
    const holder = holders.get(key)
    if (!holder?.entries.delete(entry)) return
    if (holder.entries.size === 0) holders.delete(key)
    if (holders.size > 0) return
    clearInterval(ping)
    clearInterval(check)
    ping = check = undefined
  }

  /** Ends the streams of revoked tokens: those named `name`, or all tokens when no name is given. */
  async function recheck(name?: string): Promise<void> {
    const keys = [...holders].filter(([, h]) => name === undefined || h.name === name).map(([key]) => key)
    if (keys.length === 0) return
    let live: Set<string>
    try {
      live = await tokens.live(keys)
    } catch (err) {
      // Kept open: a database this instance cannot read gives it no run changes to relay either.
      log.warn(
        { err },
        'could not re-check the tokens of open event streams; they stay open until the next check',
      )
      return
    }
    for (const key of keys) {
      if (live.has(key)) continue
      const holder = holders.get(key)
      if (holder) log.info({ tokenName: holder.name }, 'token revoked: ending its event streams')
      for (const entry of [...(holder?.entries ?? [])]) entry.end(REVOKED)
    }
  }

  const unwatch = tokens.watchRevocations((name) => void recheck(name))

  return {
    /**
     * A stream of the run changes for this request (already ended if its response has closed), or
     * the reason it is refused.
     */
    open(request: StreamRequest): { stream: PassThrough } | { refused: string } {
      const { token, principal, job, connection } = request
      const key = hashToken(token).toString('hex')
      const open = holders.get(key)?.entries.size ?? 0
      if (open >= perToken) {
        return {
          refused:
            `the token "${principal.name}" has ${open} event streams open on this server instance, ` +
            `the most one token may hold (EVENTS_STREAMS_PER_TOKEN=${perToken}, counted per instance); ` +
            'close one first',
        }
      }
      const stream = new PassThrough()
      stream.on('error', () => {})
      let ended = false
      let unsubscribe = () => {}
      const entry: Entry = {
        write(text) {
          if (ended) return
          if (stream.readableLength > MAX_BUFFERED) {
            request.log.warn('event stream client is not reading; disconnecting it')
            return entry.end()
          }
          stream.write(text)
        },
        end(last) {
          if (ended) return
          ended = true
          if (last !== undefined && !stream.destroyed) stream.write(last)
          unsubscribe()
          remove(key, entry)
          if (!stream.destroyed) stream.end()
        },
      }
      // First, so that however early the client hangs up, its stream ends (and gives back its place).
      connection.once('close', () => entry.end())
      // Fastify destroys the stream when the response closes; that ends it too.
      stream.once('close', () => entry.end())
      if (connection.destroyed) {
        entry.end()
        return { stream }
      }
      add(key, principal.name, entry)
      // Sent at once, so clients (and proxies) see the stream open before the first event.
      entry.write('retry: 3000\n: connected\n\n')
      unsubscribe = request.feed
        ? request.feed(entry)
        : runEvents.subscribe(
            (run) => {
              if (job === undefined || run.job === job)
                entry.write(`event: run\ndata: ${JSON.stringify(run)}\n\n`)
            },
            { onEnd: () => entry.end(), onGap: () => entry.write(GAP) },
          )
      if (ended) unsubscribe()
      return { stream }
    },

    /** Open streams and running timers: both 0 when no client is connected. */
    stats(): { streams: number; timers: number } {
      return { streams: all().length, timers: (ping ? 1 : 0) + (check ? 1 : 0) }
    },

    /** Stops watching for revokes and ends every open stream. */
    close(): void {
      unwatch()
      for (const entry of all()) entry.end()
    },
  }
}

export type EventStreams = ReturnType<typeof createEventStreams>
