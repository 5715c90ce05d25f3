// Schedules: when each job runs. Edits apply at once on every instance; preview shows the fire times
// of any cron expression without saving it.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { Cursor, errors, Page, Timestamp } from '../../lib/schemas.js'
import { HEALTH_STATES } from '../schedule-health.js'
import { compileCron, type Schedule } from '../schedule-store.js'
import {
  Count,
  CronExpression,
  Recent,
  ScheduleCreate,
  ScheduleName,
  SchedulePatch,
  Timezone,
} from '../schemas/schedule.js'

const NameParams = Type.Object({ name: ScheduleName })
const CountQuery = Type.Object({ count: Type.Optional(Count) }, { additionalProperties: false })
const ListQuery = Type.Object(
  {
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Page size (1-1000).' }),
    ),
    cursor: Type.Optional(Cursor),
    job: Type.Optional(
      Type.String({ minLength: 1, maxLength: 100, description: 'Only schedules of this job.' }),
    ),
    enabled: Type.Optional(
      Type.Boolean({ description: 'Only enabled (true) or disabled (false) schedules.' }),
    ),
    health: Type.Optional(Type.Enum([...HEALTH_STATES], { description: 'Only schedules in this health.' })),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 63,
        description: 'Only schedules whose name contains this (any case).',
      }),
    ),
    count: Type.Optional(Count),
    recent: Type.Optional(Recent),
  },
  { additionalProperties: false },
)
const ScheduleRef = Type.Ref('Schedule')

/** A schedule as the API shows it: with its next fire time(s) and last run. */
async function present(app: FastifyInstance, list: Schedule[], count?: number) {
  const names = list.map((s) => s.name)
  const [lastRuns, health] = await Promise.all([
    app.runStore.lastBySchedule(names),
    app.scheduleHealth.evaluate({ names }),
  ])
  return list.map((schedule) => {
    const { createdAt: _, ...rest } = schedule
    const firing = schedule.enabled && app.jobs.has(schedule.job)
    const upcoming = firing ? compileCron(schedule.cron, schedule.timezone).nextRuns(count ?? 1) : []
    return {
      ...rest,
      nextRunAt: upcoming[0]?.toISOString() ?? null,
      ...(count ? { nextRuns: upcoming.map((d) => d.toISOString()) } : {}),
      lastRun: lastRuns.get(schedule.name) ?? null,
      health: health.get(schedule.name)?.health ?? 'ok',
    }
  })
}

const schedules: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/schedules',
    {
      schema: {
        tags: ['schedules'],
        operationId: 'listSchedules',
        summary: 'List schedules by name, a page at a time',
        description:
          'Ordered by name; pass nextCursor as cursor for the next page. Disabled schedules (and ' +
          'those whose job is not registered) have nextRunAt null. With recent=N, each schedule ' +
          'also has its latest N finished runs (recent) and their successRate, for a sparkline.',
        querystring: ListQuery,
        response: { 200: Page(ScheduleRef), ...errors(400) },
      },
    },
    async (request) => {
      const { limit = 100, cursor, count, recent = 0, ...filter } = request.query
      const now = app.scheduleHealth.clock()
      const page = await app.scheduleStore.list(filter, limit, cursor, now, recent)
      return { items: await present(app, page.items, count), nextCursor: page.nextCursor }
    },
  )

  app.post(
    '/schedules',
    {
      schema: {
        tags: ['schedules'],
        operationId: 'createSchedule',
        summary: 'Create a schedule',
        body: ScheduleCreate,
        response: { 201: ScheduleRef, ...errors(400, 409) },
      },
    },
    async (request, reply) => {
      const schedule = await app.scheduleStore.create(request.body)
      await request.audit('schedule.create', { target: schedule.name, after: schedule })
      const [shown] = await present(app, [schedule])
      return reply.code(201).header('location', `/schedules/${schedule.name}`).send(shown)
    },
  )

  app.post(
    '/schedules/preview',
    {
      schema: {
        tags: ['schedules'],
        operationId: 'previewSchedule',
        summary: 'Next fire times of a cron expression, without saving anything',
        body: Type.Object(
          {
            cron: CronExpression,
            timezone: Type.Optional(Timezone),
            count: Type.Optional({ ...Count, default: 5 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ nextRuns: Type.Array(Timestamp) }), ...errors(400) },
      },
    },
    async (request) => {
      const { cron, timezone = app.config.schedulerTimezone, count = 5 } = request.body
      return {
        nextRuns: compileCron(cron, timezone)
          .nextRuns(count)
          .map((d) => d.toISOString()),
      }
    },
  )

  app.get(
    '/schedules/:name',
    {
      schema: {
        tags: ['schedules'],
        operationId: 'getSchedule',
        summary: 'One schedule',
        params: NameParams,
        querystring: CountQuery,
        response: { 200: ScheduleRef, ...errors(400, 404) },
      },
    },
    async (request) => {
      const [shown] = await present(
        app,
        [await app.scheduleStore.get(request.params.name)],
        request.query.count,
      )
      return shown
    },
  )

  app.patch(
    '/schedules/:name',
    {
      schema: {
        tags: ['schedules'],
        operationId: 'updateSchedule',
        summary: 'Edit a schedule (applies at once, on every instance)',
        params: NameParams,
        body: SchedulePatch,
        response: { 200: ScheduleRef, ...errors(400, 404) },
      },
    },
    async (request) => {
      const before = await app.scheduleStore.get(request.params.name)
      const schedule = await app.scheduleStore.update(request.params.name, request.body)
      await request.audit('schedule.update', { target: schedule.name, before, after: schedule })
      const [shown] = await present(app, [schedule])
      return shown
    },
  )

  app.delete(
    '/schedules/:name',
    {
      schema: {
        tags: ['schedules'],
        operationId: 'deleteSchedule',
        summary: 'Delete a schedule (its run history is kept)',
        params: NameParams,
        response: { 204: Type.Null(), ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const before = await app.scheduleStore.get(request.params.name)
      await app.scheduleStore.remove(request.params.name)
      await request.audit('schedule.delete', { target: before.name, before })
      return reply.code(204).send(null)
    },
  )
}

export default schedules
