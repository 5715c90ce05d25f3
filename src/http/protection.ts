// What protects every response and the process: security headers with a same-origin content
// policy, overload shedding, and log redaction of credentials.
import helmet from '@fastify/helmet'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type { Config } from '../config.js'

/**
 * Same-origin only. Swagger UI and the dashboard load scripts from this server and nowhere else;
 * Swagger UI sets inline styles and shows data: images, which the two relaxations allow.
 */
const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
}

const PROBES = new Set(['/health', '/ready', '/metrics'])

export async function protect(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(helmet, { contentSecurityPolicy: { directives: CONTENT_SECURITY_POLICY } })
  // An overloaded process (its event loop lagging a second on average, or its heap over the limit)
  // answers 503 with Retry-After instead of queueing requests until it falls over. Probes still
  // answer: they are cheap, and a monitor must be able to see the state of a busy process.
  await app.register(underPressure, {
    maxEventLoopDelay: config.overloadEventLoopDelayMs,
    maxHeapUsedBytes: config.overloadHeapMb * 1024 * 1024,
    pressureHandler: (request, reply) => {
      if (PROBES.has(request.routeOptions.url ?? '')) return // goes on to the route
      // Sent here, the request goes no further (Fastify stops once a reply is sent).
      void reply.code(503).header('retry-after', 10).send({
        statusCode: 503,
        error: 'Service Unavailable',
        message: 'the server is overloaded; retry in 10 s',
      })
    },
  })
}

/** Log redaction: credentials never reach the log, whatever a log call passes in. */
const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'databaseUrl',
  '*.databaseUrl',
  'adminToken',
  '*.adminToken',
]

/** Whatever logger options the caller gives, credentials are redacted. */
export function withRedaction(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return false
  return { ...(logger === true ? {} : logger), redact: LOG_REDACT }
}
