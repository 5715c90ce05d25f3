// A run as the API shows it; the run store's types derive from these schemas.
import { type Static, Type } from 'typebox'
import { Json, JsonObject, Nullable, Timestamp } from '../../lib/schemas.js'

export const RUN_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'] as const
export const RUN_TRIGGERS = ['schedule', 'manual', 'retry', 'catch-up', 'chain'] as const
export const WAITING_REASONS = ['job concurrency', 'instance capacity'] as const

export const RunState = Type.Enum([...RUN_STATES])
export const RunTrigger = Type.Enum([...RUN_TRIGGERS])

export const RunError = Type.Object({
  code: Type.String({
    description: 'timeout, cancelled, interrupted, abandoned, overlap, missed, chain_stopped, error, …',
  }),
  message: Type.String(),
  final: Type.Optional(
    Type.Boolean({
      description: 'true: the job said no other attempt could succeed, so the run was not retried.',
    }),
  ),
})

const ChainStep = Type.Object(
  {
    job: Type.String({ minLength: 1, maxLength: 100 }),
    args: Type.Optional(JsonObject),
  },
  { additionalProperties: false },
)

/** Steps to run one after another once a run succeeds. */
export const Then = Type.Array(ChainStep, {
  minItems: 1,
  maxItems: 10,
  description:
    'Jobs to run after this one succeeds (after its retries), in order: each step is queued as a run ' +
    'with trigger "chain" when the one before it succeeds. A failure or cancel stops the chain; the ' +
    'steps not run are recorded as skipped (chain_stopped). 1-10 steps; args are validated when saved.',
  examples: [[{ job: 'template-embed', args: { missing: true } }]],
})

/** A chain as stored and shown: each step with its args, defaults filled in. */
export const Chain = Type.Array(Type.Object({ job: Type.String(), args: JsonObject }))

export const WaitingFor = Type.Enum([...WAITING_REASONS], {
  description:
    'Why a due queued run has not started: the job already runs as many runs as its concurrency ' +
    'allows, or the instance that last looked was at MAX_CONCURRENT_RUNS.',
})

export const RunProgress = Type.Object(
  {
    done: Type.Number({ description: 'How much is done, in `unit`s.' }),
    total: Nullable(
      Type.Number({ description: 'How much there is in all, when the job knows (an estimate for backups).' }),
    ),
    unit: Type.String({
      description: 'What is counted: bytes, files, rows, templates, …',
      examples: ['bytes'],
    }),
    updatedAt: Timestamp,
  },
  {
    description:
      'How far the run has got, as its job last reported (stored at most once a second while it runs, and at its end); null when the job reports none.',
  },
)

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
    waitingFor: Nullable(WaitingFor),
    parentId: Nullable(
      Type.Integer({ description: 'The run whose success (or stop) led to this chain step.' }),
    ),
    then: Nullable({ ...Chain, description: 'The chain steps still to come after this run.' }),
    progress: Nullable(RunProgress),
  },
  { $id: 'Run' },
)

export const RunRef = Type.Ref('Run')

export type Run = Static<typeof Run>
export type RunState = Static<typeof RunState>
export type RunTrigger = Static<typeof RunTrigger>
export type RunError = Static<typeof RunError>
export type WaitingFor = Static<typeof WaitingFor>
export type RunProgress = Static<typeof RunProgress>
