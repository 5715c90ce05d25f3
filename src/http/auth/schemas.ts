// Tokens, principals and audit entries as the API shows them; the TypeScript types derive from these.
import { type Static, Type } from 'typebox'
import { Json, Nullable, Timestamp } from '../../lib/schemas.js'
import { ROLES } from './tokens.js'

export const Role = Type.Enum([...ROLES], { description: 'viewer < operator < admin' })

/** What a token's name may be; the API and the `steward token` command check the same pattern. */
export const TOKEN_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'

export const TokenName = Type.String({
  pattern: TOKEN_NAME_PATTERN,
  description: 'Letters, digits, ".", "_" and "-"; up to 100 characters.',
  examples: ['ci'],
})

export const TokenInfo = Type.Object(
  {
    name: Type.String(),
    role: Role,
    createdAt: Timestamp,
    createdBy: Nullable(Type.String()),
    lastUsedAt: Nullable({ ...Timestamp, description: 'Updated at most once a minute.' }),
  },
  { $id: 'Token' },
)

export const Principal = Type.Object({
  name: Type.String({ description: 'The token\'s name ("STEWARD_ADMIN_TOKEN" for the environment\'s).' }),
  role: Role,
})

export const AUDIT_ACTIONS = [
  'schedule.create',
  'schedule.update',
  'schedule.delete',
  'job.trigger',
  'job.update',
  'run.cancel',
  'backup.delete',
  'backup.verify',
  'token.create',
  'token.revoke',
  'access.denied',
] as const

export const AuditAction = Type.Enum([...AUDIT_ACTIONS])

export const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    actor: Type.String({ description: 'The name of the token that made the request.' }),
    action: AuditAction,
    target: Nullable(Type.String({ description: 'Schedule name, run id, backup id, job or token name.' })),
    before: Json,
    after: Json,
    instance: Nullable(Type.String()),
  },
  { $id: 'AuditEntry' },
)

export type AuditAction = Static<typeof AuditAction>
export type AuditEntry = Static<typeof AuditEntry>
