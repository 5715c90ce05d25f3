// What protects every response and the process: security headers with a same-origin content
// policy, overload shedding, and log redaction of credentials.
import helmet from '@fastify/helmet'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify'
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

/**
 * How far the event loop lags: a timer due every `sampleMs` measures how late it fires, and the lag
 * is the mean of the samples of the last `windowMs`. A loop blocked for a while counts as the one late
 * sample it leaves, so the lag it measured is honoured (@fastify/under-pressure's histogram has no
 * samples then, which it reads as an infinite delay: a process descheduled on a busy machine, or
 * busy starting, shed every request for a second whatever the limit). Ten timer wakeups a second,
 * where under-pressure's monitor takes a hundred.
 */
export function createLagMeter({ sampleMs = 100, windowMs = 1000 } = {}) {
  const samples: Array<{ at: number; lag: number }> = []
  let due = performance.now() + sampleMs
  const timer = setInterval(() => {
    const now = performance.now()
    samples.push({ at: now, lag: Math.max(0, now - due) })
    due = now + sampleMs
    while ((samples[0]?.at ?? now) < now - windowMs) samples.shift()
  }, sampleMs)
  timer.unref()
  return {
    /** Mean lateness (ms) of the last window's samples. */
    lag(): number {
      const since = performance.now() - windowMs
      let sum = 0
      let n = 0
      for (const sample of samples) {
        if (sample.at < since) continue
        sum += sample.lag
        n++
      }
      return n === 0 ? 0 : sum / n
    },
    stop: () => clearInterval(timer),
  }
}

const OVERLOADED = {
  statusCode: 503,
  error: 'Service Unavailable',
  message: 'the server is overloaded; retry in 10 s',
}

export async function protect(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(helmet, { contentSecurityPolicy: { directives: CONTENT_SECURITY_POLICY } })
  // An overloaded process (its event loop lagging a second on average, or its heap over the limit)
  // answers 503 with Retry-After instead of queueing requests until it falls over. Probes still
  // answer: they are cheap, and a monitor must be able to see the state of a busy process.
  const shed = (reply: FastifyReply) => reply.code(503).header('retry-after', 10).send(OVERLOADED)
  // Measured from ready on: building the app (compiling every route's schemas) stalls the loop
  // once, and that is not load.
  let meter: ReturnType<typeof createLagMeter> | undefined
  app.addHook('onReady', async () => {
    meter = createLagMeter()
  })
  app.addHook('onClose', async () => meter?.stop())
  app.addHook('onRequest', async (request, reply) => {
    if (PROBES.has(request.routeOptions.url ?? '')) return
    // Sent here, the request goes no further (Fastify stops once a reply is sent).
    if ((meter?.lag() ?? 0) > config.overloadEventLoopDelayMs) return shed(reply)
  })
  if (config.overloadHeapMb > 0)
    await app.register(underPressure, {
      maxHeapUsedBytes: config.overloadHeapMb * 1024 * 1024,
      pressureHandler: (request, reply) => {
        if (PROBES.has(request.routeOptions.url ?? '')) return // goes on to the route
        void shed(reply)
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
