import { Type } from 'typebox'
import { JsonObject, Nullable } from '../../lib/schemas.js'

export const Job = Type.Object(
  {
    name: Type.String(),
    description: Type.String(),
    argsSchema: JsonObject,
    timeoutMs: Type.Integer(),
    maxAttempts: Type.Integer(),
    schedules: Type.Array(Type.String(), { description: 'Names of the schedules that run this job.' }),
    lastRun: Nullable(Type.Ref('Run')),
  },
  { $id: 'Job' },
)
