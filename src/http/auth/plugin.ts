// Access control: bearer tokens with roles viewer < operator < admin. Every route's rule is in the
// ACCESS table below, in one place, so what a role may do can be read (and reviewed) at a glance; a
// route without a rule refuses to start, so nothing is ever exposed by omission. Also: the failed-
// authentication limit, the per-token limit on mutating requests, and the OpenAPI security scheme.
import rateLimit from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { errors } from '../../lib/schemas.js'
import { type Audit, type AuditInput, createAudit } from './audit.js'
import type { AuditAction } from './schemas.js'
import { createTokens, type Principal, type Role, roleAtLeast, TOKEN_CHANNEL, type Tokens } from './tokens.js'

export type Access = 'public' | Role

type AuditChange = Omit<AuditInput, 'actor' | 'action'>

declare module 'fastify' {
  interface FastifyInstance {
    tokens: Tokens
    audit: Audit
  }
  interface FastifyRequest {
    /** Who sent the request (null on public routes). */
    principal: Principal | null
    /** Records in the audit log what this request changed or triggered, as its token's name. */
    audit(action: AuditAction, change?: AuditChange): Promise<void>
  }
  interface FastifyContextConfig {
    access?: Access
  }
}

/** Who may call what. HEAD follows GET. */
export const ACCESS: Record<string, Access> = {
  'GET /health': 'public',
  'GET /ready': 'public',
  'GET /metrics': 'public', // closed by METRICS_TOKEN when set (src/monitoring/routes/metrics.ts)
  'GET /openapi.json': 'public',
  'GET /': 'public', // the dashboard page: it asks for a token and calls the API with it

  'GET /me': 'viewer',
  'GET /events': 'viewer',
  'GET /jobs': 'viewer',
  'GET /jobs/:name': 'viewer',
  'GET /runs': 'viewer',
  'GET /runs/:id': 'viewer',
  'GET /schedules': 'viewer',
  'GET /schedules/:name': 'viewer',
  'POST /schedules/preview': 'viewer', // computes fire times, saves nothing
  'GET /backups': 'viewer',
  'GET /backups/:id': 'viewer',
  'GET /registry/snapshots': 'viewer',
  'GET /registry/snapshots/latest': 'viewer',
  'GET /registry/snapshots/:id': 'viewer',
  'GET /templates': 'viewer',
  'GET /templates/search': 'viewer',
  'GET /templates/:id': 'viewer',

  'POST /jobs/:name/runs': 'operator',
  'POST /runs/:id/cancel': 'operator',
  'GET /backups/:id/download': 'operator', // a full copy of the database
  'POST /backups/:id/verify': 'operator',

  'POST /schedules': 'admin',
  'PATCH /schedules/:name': 'admin',
  'DELETE /schedules/:name': 'admin',
  'DELETE /backups/:id': 'admin',
  'POST /tokens': 'admin',
  'GET /tokens': 'admin',
  'DELETE /tokens/:name': 'admin',
  'GET /audit': 'admin',
}

/** Swagger UI and the dashboard's static files: public, like the page that loads them. */
const PUBLIC_PREFIXES = ['/docs', '/ui/']

export function accessOf(method: string, url: string): Access | undefined {
  if (PUBLIC_PREFIXES.some((prefix) => url === prefix.replace(/\/$/, '') || url.startsWith(prefix)))
    return 'public'
  return ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`]
}

export interface AuthOptions {
  config: Config
  /** Routes and the OpenAPI document only: no database, no token checks. */
  documentationOnly?: boolean
}

export default fp<AuthOptions>(
  async (app, { config, documentationOnly }) => {
    app.decorateRequest('principal', null)
    // Registered before the rate limiter, whose own onRoute hook reads the limit put here.
    app.addHook('onRoute', (route) => describeAccess(route, config.rateLimitMutations))
    // Per token (or address, before authentication) and route, on routes that change something.
    await app.register(rateLimit, {
      global: false,
      keyGenerator: (request) => request.principal?.name ?? request.ip,
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        error: 'Too Many Requests',
        message: `more than ${context.max} requests a minute to this endpoint; retry in ${Math.ceil(context.ttl / 1000)} s`,
      }),
    })
    if (documentationOnly) return

    const tokens = createTokens(app.sql, { envAdminToken: config.adminToken })
    const audit = createAudit(app.sql, config.instanceId)
    app.decorate('tokens', tokens)
    app.decorate('audit', audit)
    app.decorateRequest(
      'audit',
      function (this: FastifyRequest, action: AuditAction, change: AuditChange = {}) {
        return audit.record({ ...change, actor: actorOf(this), action })
      },
    )
    const failures = failureLimiter(config.authFailuresPerMinute)

    app.addHook('onRequest', async (request, reply) => {
      const access = request.routeOptions.config?.access
      if (access === undefined || access === 'public') return
      const token = bearerToken(request.headers.authorization)
      if (token === null) {
        return deny(reply, 401, 'send the header "Authorization: Bearer <token>"', 'Bearer realm="steward"')
      }
      const retryIn = failures.blockedFor(request.ip)
      if (retryIn > 0) {
        reply.header('retry-after', Math.ceil(retryIn / 1000))
        return deny(reply, 429, `too many failed authentications; retry in ${Math.ceil(retryIn / 1000)} s`)
      }
      const principal = await tokens.authenticate(token)
      if (!principal) {
        failures.fail(request.ip)
        return deny(
          reply,
          401,
          'the token is unknown or revoked',
          'Bearer realm="steward", error="invalid_token"',
        )
      }
      request.principal = principal
      if (!roleAtLeast(principal.role, access)) {
        return deny(
          reply,
          403,
          `this needs the ${access} role; the token "${principal.name}" has the ${principal.role} role`,
        )
      }
    })

    // Another instance revoked a token: forget cached lookups of it here too.
    const subscription = await app.sql
      .listen(
        TOKEN_CHANNEL,
        (name) => tokens.forget(name),
        () => tokens.forget(),
      )
      .catch((err) => {
        app.log.warn({ err }, 'could not listen for token revocations; cached lookups expire in 5 s')
        return null
      })
    app.addHook('onClose', async () => {
      await subscription?.unlisten().catch(() => {})
    })

    const file = await tokens.bootstrap(config.dataDir)
    if (file)
      app.log.warn({ file }, 'no API token was configured: created an admin token and wrote it to this file')
  },
  { name: 'auth' },
)

/**
 * Puts the role on the route (for the onRequest check) and into the OpenAPI document, and a
 * per-minute limit on routes that change something.
 */
function describeAccess(route: RouteOptions, mutationsPerMinute: number): void {
  const methods = [route.method].flat()
  const method = methods.find((m) => m !== 'HEAD') ?? 'HEAD'
  const access = accessOf(method, route.url)
  if (access === undefined) {
    throw new Error(
      `route ${method} ${route.url} has no access rule: add it to ACCESS in src/http/auth/plugin.ts`,
    )
  }
  const changes = methods.some((m) => m !== 'GET' && m !== 'HEAD') && access !== 'public'
  route.config = {
    ...route.config,
    access,
    ...(changes ? { rateLimit: { max: mutationsPerMinute, timeWindow: 60_000 } } : {}),
  } as typeof route.config
  const schema = route.schema
  if (!schema || schema.hide) return
  if (access === 'public') {
    route.schema = { ...schema, security: [] }
    return
  }
  const needs = `Requires a token with the **${access}** role (or higher).`
  route.schema = {
    ...schema,
    security: [{ bearerAuth: [] }],
    description: schema.description ? `${schema.description}\n\n${needs}` : needs,
    response: { ...(schema.response as object), ...errors(401, 403, 429) },
  }
}

function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '')
  return match?.[1] ?? null
}

const STATUS = { 401: 'Unauthorized', 403: 'Forbidden', 429: 'Too Many Requests' } as const

function deny(reply: FastifyReply, status: 401 | 403 | 429, message: string, challenge?: string) {
  if (challenge) reply.header('www-authenticate', challenge)
  return reply.code(status).send({ statusCode: status, error: STATUS[status], message })
}

/**
 * Failed authentications per client address in a fixed one-minute window: past the limit, every
 * bearer request from that address gets 429 until the window ends, so tokens cannot be guessed
 * at speed. In memory, per instance; entries expire with their window.
 */
function failureLimiter(perMinute: number) {
  const windows = new Map<string, { count: number; resetAt: number }>()
  const windowMs = 60_000
  return {
    blockedFor(ip: string): number {
      const entry = windows.get(ip)
      if (!entry) return 0
      const now = Date.now()
      if (entry.resetAt <= now) {
        windows.delete(ip)
        return 0
      }
      return entry.count >= perMinute ? entry.resetAt - now : 0
    },
    fail(ip: string): void {
      const now = Date.now()
      const entry = windows.get(ip)
      if (entry && entry.resetAt > now) entry.count++
      else {
        if (windows.size > 10_000) {
          for (const [key, value] of windows) if (value.resetAt <= now) windows.delete(key)
        }
        windows.set(ip, { count: 1, resetAt: now + windowMs })
      }
    },
  }
}

/** The audit actor of a request. */
export function actorOf(request: FastifyRequest): string {
  return request.principal?.name ?? 'anonymous'
}
