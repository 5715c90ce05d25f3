// The one error handler: 4xx errors keep their message (it says what to fix); 5xx details stay in
// the log; a database that cannot be reached is a 503, not a 500.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { isDatabaseDown } from '../lib/errors.js'
import { CursorError } from '../lib/pagination.js'

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  let status = err.statusCode ?? 500
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const sent = request.headers['content-type']
    err.message = `send the body as JSON with the header "Content-Type: application/json"${sent ? ` (this request said "${sent}")` : ''}`
  }
  if (err instanceof CursorError || err.validation) status = 400
  if (isDatabaseDown(err)) status = 503
  if (status >= 500) {
    request.log.error({ err }, 'request failed')
    const down = status === 503 && isDatabaseDown(err)
    // Errors that say `expose` carry a message written for the client (a failing upstream, say).
    const exposed = (err as { expose?: unknown }).expose === true
    return reply.code(status).send({
      statusCode: status,
      error: STATUS_TEXT[status] ?? 'Internal Server Error',
      message: exposed
        ? err.message
        : down
          ? 'the database is unreachable; try again shortly'
          : 'internal error; see the server log',
    })
  }
  return reply.code(status).send({
    statusCode: status,
    code: err.code,
    error: STATUS_TEXT[status] ?? 'Bad Request',
    message: err.message,
  })
}
