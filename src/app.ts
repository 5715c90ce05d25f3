// The application: plugins, shared schemas, routes and error handling. buildApp is the one factory
// used by the server, the OpenAPI generator and the tests.
import helmet from '@fastify/helmet'
import sensible from '@fastify/sensible'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import underPressure from '@fastify/under-pressure'
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify'
import type { Config } from './config.js'
import type { AnyJob } from './engine/job.js'
import { jobs as registeredJobs } from './jobs/index.js'
import auth from './http/auth/plugin.js'
import backupsPlugin from './features/backups/plugin.js'
import dashboard from './http/dashboard.js'
import db from './db/plugin.js'
import monitoring from './monitoring/plugin.js'
import scheduler from './engine/plugin.js'
import swagger from './http/swagger.js'
import access from './http/auth/routes.js'
import backups from './features/backups/routes.js'
import events from './monitoring/routes/events.js'
import health from './monitoring/routes/health.js'
import jobs from './engine/routes/jobs.js'
import metrics from './monitoring/routes/metrics.js'
import registry from './features/registry/routes.js'
import runs from './engine/routes/runs.js'
import schedules from './engine/routes/schedules.js'
import templates from './features/templates/routes.js'
import { AuditEntry, TokenInfo } from './http/auth/schemas.js'
import { Backup } from './features/backups/schemas.js'
import { ErrorReply } from './lib/schemas.js'
import { Job } from './engine/schemas/job.js'
import { RegistrySnapshot, RegistrySnapshotSummary } from './features/registry/schemas.js'
import { Run } from './engine/schemas/run.js'
import { Schedule } from './engine/schemas/schedule.js'
import { Template, TemplateSummary } from './features/templates/schemas.js'
import { isDatabaseDown } from './lib/errors.js'
import { CursorError } from './lib/pagination.js'

export interface BuildOptions {
  /** Jobs to register; defaults to the registry in src/jobs. */
  jobs?: AnyJob[]
  logger?: FastifyServerOptions['logger']
  /** What time it is for catch-up decisions; tests pass a fixed clock. */
  clock?: () => Date
  /** Routes and schemas only, no database: for generating the OpenAPI document. */
  documentationOnly?: boolean
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: withRedaction(options.logger),
    // Reject unknown fields instead of silently dropping them (a typo should be a 400); numbers in
    // JSON bodies must be finite (JSON.parse turns 1e400 into Infinity).
    ajv: { customOptions: { removeAdditional: false, strictNumbers: true } },
    bodyLimit: 1024 * 1024,
    // Also bounds close hooks: shutdown waits SHUTDOWN_GRACE_MS for jobs plus their cleanup.
    pluginTimeout: config.shutdownGraceMs + 25_000,
    requestTimeout: 120_000,
    connectionTimeout: 120_000,
  }).withTypeProvider<TypeBoxTypeProvider>()

  await app.register(sensible)
  for (const schema of [
    ErrorReply,
    Run,
    Schedule,
    Job,
    Backup,
    RegistrySnapshotSummary,
    RegistrySnapshot,
    TemplateSummary,
    Template,
    TokenInfo,
    AuditEntry,
  ])
    app.addSchema(schema)
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
  if (!options.documentationOnly) {
    if (!config.databaseUrl)
      throw new Error('buildApp needs config.databaseUrl (server.ts starts the embedded one)')
    await app.register(db, { databaseUrl: config.databaseUrl, pgvector: config.pgvector })
  }
  // Before any route (Swagger UI's included): it gives every route its access rule.
  await app.register(auth, { config, documentationOnly: options.documentationOnly })
  await app.register(swagger)
  app.setErrorHandler(errorHandler)
  // An empty JSON body (curl -X POST -H 'content-type: application/json', or Swagger UI with the
  // editor cleared) means "no body", not a parse error; the routes fill in their defaults.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString()
    if (text.trim() === '') return done(null, undefined)
    return parseJson(request, text, done)
  })
  app.addHook('preValidation', rejectInfiniteNumbers)

  if (!options.documentationOnly) {
    await app.register(scheduler, { config, jobs: options.jobs ?? registeredJobs, clock: options.clock })
    await app.register(backupsPlugin)
    await app.register(monitoring, { clock: options.clock })
  }

  await app.register(health)
  await app.register(jobs)
  await app.register(runs)
  await app.register(schedules)
  await app.register(backups)
  await app.register(registry)
  await app.register(templates)
  await app.register(access)
  await app.register(dashboard)
  await app.register(events)
  await app.register(metrics)
  return app
}

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
function withRedaction(logger: BuildOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return false
  return { ...(logger === true ? {} : logger), redact: LOG_REDACT }
}

type PropertySchemas = Record<string, { type?: string }>

/**
 * Ajv coerces "1e400" in a query or path to Infinity and then skips the range checks (ajv 8.20), so
 * such values would reach the database. Numeric params must parse to a finite number.
 */
async function rejectInfiniteNumbers(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema
  const parts = [
    ['params', schema?.params, request.params],
    ['querystring', schema?.querystring, request.query],
  ] as const
  for (const [part, partSchema, values] of parts) {
    const properties = (partSchema as { properties?: PropertySchemas } | undefined)?.properties ?? {}
    for (const [key, property] of Object.entries(properties)) {
      const raw = (values as Record<string, unknown> | undefined)?.[key]
      const numeric = property.type === 'integer' || property.type === 'number'
      if (numeric && typeof raw === 'string' && Math.abs(Number(raw)) === Number.POSITIVE_INFINITY) {
        throw Object.assign(new Error(`${part}/${key} must be a finite number`), { statusCode: 400 })
      }
    }
  }
}

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

/** 4xx errors keep their message (it says what to fix); 5xx details stay in the log. */
function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  let status = err.statusCode ?? 500
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
