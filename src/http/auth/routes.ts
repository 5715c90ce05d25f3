// Tokens (admin), the caller's own identity, and the audit log (admin).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, ListQuery, Page, Timestamp } from '../../lib/schemas.js'
import { actorOf } from './plugin.js'
import { AuditAction, Principal, Role, TokenName } from './schemas.js'

export const ACCESS_TAG = { name: 'access', description: "Tokens, the caller's identity, the audit log" }

const TokenRef = Type.Ref('Token')

const AuditQuery = ListQuery({
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  action: Type.Optional(AuditAction),
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  since: Type.Optional({ ...Timestamp, description: 'At or after (ISO-8601).' }),
  until: Type.Optional({ ...Timestamp, description: 'Before (ISO-8601).' }),
})

const access: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/me',
    {
      schema: {
        tags: ['access'],
        operationId: 'getCurrentToken',
        summary: 'The token this request was made with: its name and role',
        response: { 200: Principal },
      },
    },
    async (request) => request.principal ?? { name: 'anonymous', role: 'viewer' as const },
  )

  app.post(
    '/tokens',
    {
      schema: {
        tags: ['access'],
        operationId: 'createToken',
        summary: 'Create a token (shown once)',
        description: 'The token is in this reply only; Steward keeps just its sha256.',
        body: Type.Object({ name: TokenName, role: Role }, { additionalProperties: false }),
        response: {
          201: Type.Object({
            name: Type.String(),
            role: Role,
            token: Type.String({ description: 'Send as "Authorization: Bearer <token>".' }),
            createdAt: Timestamp,
          }),
          ...errors(400, 409),
        },
      },
    },
    async (request, reply) => {
      const { token, info } = await app.tokens.create({ ...request.body, createdBy: actorOf(request) })
      await request.audit('token.create', { target: info.name, after: info })
      return reply.code(201).send({ name: info.name, role: info.role, token, createdAt: info.createdAt })
    },
  )

  app.get(
    '/tokens',
    {
      schema: {
        tags: ['access'],
        operationId: 'listTokens',
        summary: 'Live tokens (never the tokens themselves)',
        response: { 200: Page(TokenRef) },
      },
    },
    async () => ({ items: await app.tokens.list(), nextCursor: null }),
  )

  app.delete(
    '/tokens/:name',
    {
      schema: {
        tags: ['access'],
        operationId: 'revokeToken',
        summary: 'Revoke a token',
        description:
          'Takes effect at once on this instance and within 5 s on the others. 409 for the last admin token.',
        params: Type.Object({ name: TokenName }),
        response: { 204: Type.Null(), ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const before = await app.tokens.revoke(request.params.name)
      await request.audit('token.revoke', { target: before.name, before })
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/audit',
    {
      schema: {
        tags: ['access'],
        operationId: 'listAuditEntries',
        summary: 'Who changed or triggered what, newest first',
        querystring: AuditQuery,
        response: { 200: Page(Type.Ref('AuditEntry')), ...errors(400) },
      },
    },
    async (request) => {
      const { limit = 50, cursor, ...filter } = request.query
      return await app.audit.list(filter, limit, cursor)
    },
  )
}

export default access
