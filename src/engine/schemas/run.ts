import { Type } from 'typebox'
import { RUN_STATES, RUN_TRIGGERS } from '../run-store.js'
import { Json, JsonObject, Nullable, Timestamp } from '../../lib/schemas.js'

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
