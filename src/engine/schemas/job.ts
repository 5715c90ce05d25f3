import { Type } from 'typebox'
import { JsonObject, Nullable } from '../../lib/schemas.js'
import { LIMIT_BOUNDS } from '../job-settings.js'

const limit = (key: keyof typeof LIMIT_BOUNDS, description: string) =>
  Type.Integer({ minimum: LIMIT_BOUNDS[key].min, maximum: LIMIT_BOUNDS[key].max, description })

const LIMITS = {
  concurrency: limit('concurrency', 'How many runs of the job may run at once, across every instance.'),
  maxAttempts: limit('maxAttempts', 'Attempts a run gets (the first included) before it fails for good.'),
  timeoutMs: limit('timeoutMs', 'A run taking longer is aborted and fails with code timeout.'),
}

export const JobLimits = Type.Object(LIMITS)

/** PATCH /jobs/{name}: a number sets a limit, null restores the job's default. */
export const JobPatch = Type.Object(
  {
    concurrency: Type.Optional(Nullable(LIMITS.concurrency)),
    maxAttempts: Type.Optional(Nullable(LIMITS.maxAttempts)),
    timeoutMs: Type.Optional(Nullable(LIMITS.timeoutMs)),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ concurrency: 2 }, { timeoutMs: null }] },
)

export const Job = Type.Object(
  {
    name: Type.String(),
    description: Type.String(),
    argsSchema: JsonObject,
    ...LIMITS,
    defaults: { ...JobLimits, description: "The job's own limits, in force where no override is set." },
    schedules: Type.Array(Type.String(), { description: 'Names of the schedules that run this job.' }),
    lastRun: Nullable(Type.Ref('Run')),
  },
  { $id: 'Job' },
)
