// A run as the API shows it; the run store's types derive from these schemas.
import { type Static, Type } from 'typebox'
import { Json, JsonObject, Nullable, Timestamp } from '../../lib/schemas.js'

export const RUN_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'] as const
export const RUN_TRIGGERS = ['schedule', 'manual', 'retry', 'catch-up'] as const

export const RunState = Type.Enum([...RUN_STATES])
export const RunTrigger = Type.Enum([...RUN_TRIGGERS])

export const RunError = Type.Object({
  code: Type.String({ description: 'timeout, cancelled, interrupted, abandoned, overlap, error, …' }),
  message: Type.String(),
})

export const Run = Type.Object(
  {
    id: Type.Integer(),
    job: Type.String(),
    schedule: Nullable(Type.String()),
    trigger: RunTrigger,
    state: RunState,
    attempt: Type.Integer({ minimum: 1 }),
    maxAttempts: Type.Integer({ minimum: 1 }),
    retryOf: Nullable(Type.Integer({ description: 'The first attempt, for retries.' })),
    args: JsonObject,
    scheduledFor: Nullable(Timestamp),
    queuedAt: Timestamp,
    runAfter: Nullable({ ...Timestamp, description: 'A queued retry waits until then.' }),
    startedAt: Nullable(Timestamp),
    finishedAt: Nullable(Timestamp),
    durationMs: Nullable(Type.Integer()),
    result: Json,
    error: Nullable(RunError),
    instance: Nullable(Type.String({ description: 'The Steward process that ran it.' })),
  },
  { $id: 'Run' },
)

export const RunRef = Type.Ref('Run')

export type Run = Static<typeof Run>
export type RunState = Static<typeof RunState>
export type RunTrigger = Static<typeof RunTrigger>
export type RunError = Static<typeof RunError>
