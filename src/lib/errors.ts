// Domain errors. Services throw these; the app's error handler turns them into 4xx replies, so
// services never need to know about HTTP.
export class InvalidInput extends Error {
  override name = 'InvalidInput'
  readonly statusCode = 400
}

/** The caller's role does not allow this (the message says which role does). */
export class Forbidden extends Error {
  override name = 'Forbidden'
  readonly statusCode = 403
}

export class NotFound extends Error {
  override name = 'NotFound'
  readonly statusCode = 404
}

// postgres.js connection failures: the database is down, not the request wrong.
const DATABASE_DOWN = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01', // admin_shutdown
  '57P03', // cannot_connect_now
])

/** Whether an error means the database could not be reached (so: retry later, answer 503). */
export function isDatabaseDown(err: unknown): boolean {
  return DATABASE_DOWN.has(String((err as { code?: unknown } | null)?.code))
}

export class Conflict extends Error {
  override name = 'Conflict'
  readonly statusCode = 409
}
