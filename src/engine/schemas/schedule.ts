import { type Static, Type } from 'typebox'
import { JsonObject, Nullable, Timestamp } from '../../lib/schemas.js'
import { Chain, Then } from './run.js'

export const ScheduleName = Type.String({
  pattern: '^[a-z0-9][a-z0-9_-]{0,62}$',
  description: 'Lower-case letters, digits, - and _ (at most 63).',
})

export const CronExpression = Type.String({
  minLength: 1,
  maxLength: 200,
  description:
    'crontab(5): 5 fields, or 6 with seconds first. Day-of-month and day-of-week are OR-ed when both are set.',
  examples: ['0 3 * * *'],
})

export const Timezone = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'IANA timezone',
  examples: ['UTC'],
})

const Overlap = Type.Enum(['skip', 'allow'], {
  description: 'skip: a fire while the previous run is unfinished is recorded as skipped.',
})
const CatchUp = Type.Enum(['none', 'latest'], {
  description: 'latest: after downtime, run the most recent missed fire once.',
})

/** The run states that count as finished for a schedule's recent history (skipped runs never ran). */
export const RECENT_STATES = ['succeeded', 'failed', 'cancelled'] as const

export const RecentRun = Type.Object(
  {
    id: Type.Integer(),
    state: Type.Enum([...RECENT_STATES]),
    durationMs: Nullable(
      Type.Integer({ description: 'From start to finish; null for a run cancelled before it started.' }),
    ),
    finishedAt: Timestamp,
  },
  { description: 'A finished run of the schedule.' },
)

export type RecentRun = Static<typeof RecentRun>

export const Recent = Type.Integer({
  minimum: 0,
  maximum: 100,
  default: 0,
  description:
    "How many of each schedule's latest finished runs (succeeded, failed or cancelled) to include as " +
    '`recent`, with their `successRate` (0-100; 0: neither).',
})

export const Schedule = Type.Object(
  {
    name: ScheduleName,
    job: Type.String(),
    cron: Type.String(),
    timezone: Type.String(),
    args: JsonObject,
    enabled: Type.Boolean(),
    overlap: Overlap,
    catchUp: CatchUp,
    then: Nullable({
      ...Chain,
      description: 'Jobs run after each successful fire of this schedule, in order.',
    }),
    nextRunAt: Nullable(Timestamp),
    nextRuns: Type.Optional(Type.Array(Timestamp)),
    lastRun: Type.Optional(Nullable(Type.Ref('Run'))),
    health: Type.Enum(['ok', 'late', 'failing'], {
      description:
        'late: no success for more than twice the interval between fires plus the job timeout ' +
        '(counted from the last success or the last edit); failing: the latest finished run ' +
        'failed; ok otherwise. Disabled schedules are never late.',
    }),
    updatedAt: Timestamp,
    recent: Type.Optional(
      Type.Array(RecentRun, {
        description:
          'With ?recent=N: its latest N finished runs (succeeded, failed, cancelled; not skipped), oldest ' +
          'first, newest last.',
      }),
    ),
    successRate: Type.Optional(
      Nullable(
        Type.Number({
          minimum: 0,
          maximum: 1,
          description:
            'With ?recent=N: succeeded / (succeeded + failed) of those runs (cancelled ones do not ' +
            'count); null when there are none.',
        }),
      ),
    ),
  },
  { $id: 'Schedule' },
)

export const ScheduleCreate = Type.Object(
  {
    name: ScheduleName,
    job: Type.String({ minLength: 1 }),
    cron: CronExpression,
    timezone: Type.Optional(Timezone),
    args: Type.Optional(JsonObject),
    enabled: Type.Optional(Type.Boolean()),
    overlap: Type.Optional(Overlap),
    catchUp: Type.Optional(CatchUp),
    then: Type.Optional(Then),
  },
  { additionalProperties: false },
)

export const SchedulePatch = Type.Object(
  {
    cron: Type.Optional(CronExpression),
    timezone: Type.Optional(Timezone),
    args: Type.Optional(JsonObject),
    enabled: Type.Optional(Type.Boolean()),
    overlap: Type.Optional(Overlap),
    catchUp: Type.Optional(CatchUp),
    then: Type.Optional(Nullable({ ...Then, description: 'The chain; null removes it.' })),
  },
  { additionalProperties: false, minProperties: 1 },
)

export const Count = Type.Integer({
  minimum: 1,
  maximum: 100,
  description: 'How many upcoming fire times (1-100).',
})
