import { Type } from 'typebox'
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
