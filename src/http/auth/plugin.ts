// Access control: bearer tokens with roles viewer < operator < admin, checked against the rules in
// access.ts (ACCESS per route, TRIGGER_ACCESS per kind of manual run; request.authorize checks the
// latter). Also: the failed-authentication limit, the per-token limit on mutating requests, the
// audit of refused changes, and the OpenAPI security scheme.
import rateLimit from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { Forbidden } from '../../lib/errors.js'
import { errors } from '../../lib/schemas.js'
import { type Access, accessOf, TRIGGER_ACCESS, type TriggerAction } from './access.js'
import { type Audit, type AuditInput, createAudit } from './audit.js'
import type { AuditAction } from './schemas.js'
import {
  bearerToken,
  createTokens,
  type Principal,
  roleAtLeast,
  TOKEN_CHANNEL,
  type Tokens,
} from './tokens.js'

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
    /** Throws Forbidden (403, recorded in the audit log) unless this request's role may take the action. */
    authorize(action: TriggerAction): Promise<void>
  }
  interface FastifyContextConfig {
    access?: Access
  }
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
    app.decorateRequest('authorize', async function (this: FastifyRequest, action: TriggerAction) {
      const { role, why } = TRIGGER_ACCESS[action]
      const principal = this.principal
      if (principal && roleAtLeast(principal.role, role)) return
      const message = `this needs the ${role} role: ${why}; the token "${principal?.name}" has the ${principal?.role} role`
      await recordRefusal(this, message)
      throw new Forbidden(message)
    })
    /** A refused change is worth an audit row: who tried what (reads are not recorded). */
    async function recordRefusal(request: FastifyRequest, message: string) {
      if (request.method === 'GET' || request.method === 'HEAD') return
      await audit
        .record({
          actor: actorOf(request),
          action: 'access.denied',
          target: `${request.method} ${request.url.split('?')[0]}`,
          after: { message },
        })
        .catch((err) => request.log.warn({ err }, 'could not record a refused request in the audit log'))
    }
    const failures = failureLimiter(config.authFailuresPerMinute)

    app.addHook('onRequest', async (request, reply) => {
      const access = request.routeOptions.config?.access
      if (access === undefined || access === 'public') return
      const token = bearerToken(request.headers.authorization)
      if (token === null) {
        return deny(reply, 401, 'send the header "Authorization: Bearer <token>"', 'Bearer realm="steward"')
      }
      // A valid token is always served: the failure limit slows guessing from an address, and must
      // not let anyone sharing that address (everyone, behind a proxy without TRUST_PROXY) lock the
      // good tokens out.
      const principal = await tokens.authenticate(token)
      if (!principal) {
        const retryIn = failures.fail(request.ip)
        if (retryIn > 0) {
          reply.header('retry-after', Math.ceil(retryIn / 1000))
          return deny(reply, 429, `too many failed authentications; retry in ${Math.ceil(retryIn / 1000)} s`)
        }
        return deny(
          reply,
          401,
          'the token is unknown or revoked',
          'Bearer realm="steward", error="invalid_token"',
        )
      }
      request.principal = principal
      if (!roleAtLeast(principal.role, access)) {
        const message = `this needs the ${access} role; the token "${principal.name}" has the ${principal.role} role`
        await recordRefusal(request, message)
        return deny(reply, 403, message)
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

const STATUS = { 401: 'Unauthorized', 403: 'Forbidden', 429: 'Too Many Requests' } as const

function deny(reply: FastifyReply, status: 401 | 403 | 429, message: string, challenge?: string) {
  if (challenge) reply.header('www-authenticate', challenge)
  return reply.code(status).send({ statusCode: status, error: STATUS[status], message })
}

/**
 * Failed authentications per client address in a fixed one-minute window: past the limit, that
 * address's failures get 429 (with Retry-After) instead of 401 until the window ends, so tokens
 * cannot be guessed at speed. In memory, per instance; entries expire with their window.
 */
function failureLimiter(perMinute: number) {
  const windows = new Map<string, { count: number; resetAt: number }>()
  const windowMs = 60_000
  return {
    /** Counts a failure; returns how long the address stays limited (0: not limited). */
    fail(ip: string): number {
      const now = Date.now()
      let entry = windows.get(ip)
      if (entry && entry.resetAt > now) entry.count++
      else {
        if (windows.size > 10_000) {
          for (const [key, value] of windows) if (value.resetAt <= now) windows.delete(key)
        }
        entry = { count: 1, resetAt: now + windowMs }
        windows.set(ip, entry)
      }
      return entry.count > perMinute ? entry.resetAt - now : 0
    },
  }
}

/** The audit actor of a request. */
export function actorOf(request: FastifyRequest): string {
  return request.principal?.name ?? 'anonymous'
}
