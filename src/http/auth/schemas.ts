import { Type } from 'typebox'
import { AUDIT_ACTIONS } from './audit.js'
import { ROLES } from './tokens.js'
import { Json, Nullable, Timestamp } from '../../lib/schemas.js'

export const Role = Type.Enum([...ROLES], { description: 'viewer < operator < admin' })

export const TokenName = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$',
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
