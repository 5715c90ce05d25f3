// Domain errors. Services throw these; the app's error handler turns them into 4xx replies, so
// services never need to know about HTTP.
export class InvalidInput extends Error {
  override name = 'InvalidInput'
  readonly statusCode = 400
}

export class NotFound extends Error {
  override name = 'NotFound'
  readonly statusCode = 404
}

export class Conflict extends Error {
  override name = 'Conflict'
  readonly statusCode = 409
}
