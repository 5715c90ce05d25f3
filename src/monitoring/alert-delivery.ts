// Alert delivery: the outbox side of alerts.ts. A due alert is claimed with `for update skip
// locked` and leased (next_attempt_at moves past the request timeout), so one instance sends it at a
// time and a crashed sender's alert is retried by anyone once the lease ends; then it is POSTed with
// `Idempotency-Key: <incident>`, and recorded as sent, retried with backoff, or given up.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../config.js'
import { retryDelayMs } from '../lib/backoff.js'
import type { JsonValue } from '../lib/json.js'

/** A request may take this long; the delivery lease is a little longer. */
const REQUEST_TIMEOUT_MS = 10_000
const RETRY_MAX_MS = 10 * 60_000

interface AlertRow {
  id: string
  incident: string
  payload: JsonValue
  attempts: number
}

export interface DeliveryDeps {
  sql: Sql
  config: Config
  log: FastifyBaseLogger
  /** Aborted at shutdown: a request in flight stops, and its alert is due again at once. */
  signal: AbortSignal
  /** Asks for a delivery pass in `ms` (the next retry). */
  wakeIn: (ms: number) => void
}

export function createAlertDelivery({ sql, config, log, signal: stopping, wakeIn }: DeliveryDeps) {
  const url = config.alertWebhookUrl as string

  /** Takes the oldest due alert and leases it, so no other instance sends it meanwhile. */
  async function claim(): Promise<AlertRow | null> {
    const [row] = await sql<AlertRow[]>`
      update alerts set attempts = attempts + 1,
                        next_attempt_at = now() + ${REQUEST_TIMEOUT_MS + 5000} * interval '1 millisecond'
      where id = (
        select id from alerts
        where sent_at is null and gave_up_at is null and next_attempt_at <= now()
        order by id limit 1 for update skip locked
      )
      returning id, incident, payload, attempts`
    return row ?? null
  }

  async function post(alert: AlertRow): Promise<string | null> {
    try {
      const signal = AbortSignal.any([stopping, AbortSignal.timeout(REQUEST_TIMEOUT_MS)])
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'steward-alerts',
          'idempotency-key': alert.incident,
        },
        body: JSON.stringify(alert.payload),
        signal,
        redirect: 'error',
      })
      await res.body?.cancel().catch(() => {})
      return res.ok ? null : `HTTP ${res.status}`
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause
      return `${(err as Error).message}${cause ? `: ${cause.message}` : ''}`.slice(0, 1000)
    }
  }

  async function deliver(alert: AlertRow): Promise<void> {
    const error = await post(alert)
    if (error === null) {
      await sql`update alerts set sent_at = now(), last_error = null where id = ${alert.id}`
      log.info({ incident: alert.incident, attempts: alert.attempts }, 'alert delivered')
      return
    }
    if (stopping.aborted) {
      // Shutting down: let the next instance (or start) try again at once.
      await sql`update alerts set next_attempt_at = now(), last_error = ${error} where id = ${alert.id}`
      return
    }
    const giveUp = alert.attempts >= config.alertMaxAttempts
    const delay = retryDelayMs(alert.attempts, config.alertRetryBaseMs, RETRY_MAX_MS)
    await sql`
      update alerts set last_error = ${error},
        next_attempt_at = now() + ${delay} * interval '1 millisecond',
        gave_up_at = ${giveUp ? sql`now()` : null}
      where id = ${alert.id}`
    const context = { incident: alert.incident, attempts: alert.attempts, error }
    if (giveUp) log.error(context, 'alert could not be delivered; gave up')
    else {
      log.warn({ ...context, retryInMs: delay }, 'alert delivery failed; will retry')
      wakeIn(delay + 20)
    }
  }

  return { claim, deliver }
}
