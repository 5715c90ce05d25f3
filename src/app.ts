// The application: buildApp is the one factory used by the server, the OpenAPI generator and the
// tests. It decorates the config, then registers, in this order: the database, HTTP concerns
// (protection, auth, the spec, errors, parsing), the engine, monitoring and every feature. Routes
// are registered in the order the spec lists their paths.
import sensible from '@fastify/sensible'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import db from './db/plugin.js'
import type { Feature } from './engine/feature.js'
import type { AnyJob } from './engine/job.js'
import engine from './engine/plugin.js'
import engineRoutes, { ENGINE_TAGS } from './engine/routes/index.js'
import { Job } from './engine/schemas/job.js'
import { Run } from './engine/schemas/run.js'
import { Schedule } from './engine/schemas/schedule.js'
import { backups } from './features/backups/index.js'
import { maintenance } from './features/maintenance/index.js'
import { registry } from './features/registry/index.js'
import { templates } from './features/templates/index.js'
import auth from './http/auth/plugin.js'
import access, { ACCESS_TAG } from './http/auth/routes.js'
import { AuditEntry, TokenInfo } from './http/auth/schemas.js'
import { schemaCompilers } from './http/compilers.js'
import dashboard from './http/dashboard.js'
import { errorHandler } from './http/errors.js'
import { protect, withRedaction } from './http/protection.js'
import { parseRequests } from './http/requests.js'
import swagger from './http/swagger.js'
import { schemaErrorFormatter } from './http/validation.js'
import { ErrorReply } from './lib/schemas.js'
import monitoring from './monitoring/plugin.js'
import events from './monitoring/routes/events.js'
import health, { HEALTH_TAG } from './monitoring/routes/health.js'
import metrics from './monitoring/routes/metrics.js'
import runLogs, { LogLine } from './monitoring/routes/run-logs.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

/** Every feature, in the order of their tags and paths in the spec. */
export const features: Feature[] = [maintenance, backups, registry, templates]

/** The jobs the features bring: a job is listed only once it does its real work. */
export const jobs: AnyJob[] = features.flatMap((feature) => feature.jobs)

export interface BuildOptions {
  /** Jobs to register; defaults to those of the features. */
  jobs?: AnyJob[]
  logger?: FastifyServerOptions['logger']
  /** What time it is for catch-up decisions; tests pass a fixed clock. */
  clock?: () => Date
  /** Routes and schemas only, no database: for generating the OpenAPI document. */
  documentationOnly?: boolean
  /** Compile every route's schemas while building, as Fastify does, instead of at first use. */
  compileSchemasEagerly?: boolean
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = createFastify(config, options)
  try {
    await registerAll(app, config, options)
  } catch (err) {
    // A plugin refused to start (a bad key, say): release what the others opened (the pool).
    await app.close().catch(() => {})
    throw err
  }
  return app
}

/** Trust the nearest `hops` proxies, as Fastify does for a number (its types take a function). */
function hopsOf(hops: number) {
  return (_address: string, hop: number) => hop < hops
}

function createFastify(config: Config, options: BuildOptions) {
  const app = Fastify({
    logger: withRedaction(options.logger),
    // Reject unknown fields instead of silently dropping them (a typo should be a 400); numbers in
    // JSON bodies must be finite (JSON.parse turns 1e400 into Infinity).
    // `verbose`: errors carry their schema, so messages can list what is allowed (validation.ts).
    ajv: { customOptions: { removeAdditional: false, strictNumbers: true, verbose: true } },
    schemaErrorFormatter,
    // Each distinct schema compiled once, when a request first needs it: a faster start (compilers.ts).
    schemaController: { compilersFactory: schemaCompilers({ eager: options.compileSchemasEagerly }) },
    bodyLimit: 1024 * 1024,
    // request.ip is the client's, not the proxy's, only behind proxies named here (TRUST_PROXY).
    trustProxy: typeof config.trustProxy === 'number' ? hopsOf(config.trustProxy) : config.trustProxy,
    // Also bounds close hooks: shutdown waits SHUTDOWN_GRACE_MS for jobs plus their cleanup.
    pluginTimeout: config.shutdownGraceMs + 25_000,
    requestTimeout: 120_000,
    connectionTimeout: 120_000,
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.decorate('config', config)
  return app
}

async function registerAll(app: FastifyInstance, config: Config, options: BuildOptions): Promise<void> {
  const { documentationOnly } = options

  await app.register(sensible)
  const schemas = [
    ErrorReply,
    Run,
    Schedule,
    Job,
    ...features.flatMap((f) => f.schemas),
    TokenInfo,
    AuditEntry,
    LogLine,
  ]
  for (const schema of schemas) app.addSchema(schema)
  await protect(app, config)
  if (!documentationOnly) {
    if (!config.databaseUrl)
      throw new Error('buildApp needs config.databaseUrl (server.ts starts the embedded one)')
    await app.register(db, { databaseUrl: config.databaseUrl, pgvector: config.pgvector })
  }
  // Before any route (Swagger UI's included): it gives every route its access rule.
  await app.register(auth, { config, documentationOnly })
  const featureTags = features.flatMap((f) => (f.tag ? [f.tag] : []))
  await app.register(swagger, { tags: [...ENGINE_TAGS, ...featureTags, ACCESS_TAG, HEALTH_TAG] })
  app.setErrorHandler(errorHandler)
  parseRequests(app)

  if (!documentationOnly) {
    await app.register(engine, { jobs: options.jobs ?? jobs, clock: options.clock })
    await app.register(monitoring, { clock: options.clock })
  }

  await app.register(health)
  await app.register(engineRoutes)
  for (const feature of features)
    if (feature.plugin) await app.register(feature.plugin, { documentationOnly })
  await app.register(access)
  await app.register(dashboard)
  await app.register(events)
  await app.register(runLogs)
  await app.register(metrics)
}
