// Jobs: what can run, with the schedules that run it and its last run; trigger one by hand.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { errors, JsonObject, Page } from '../../lib/schemas.js'
import type { AnyJob } from '../job.js'
import type { Run } from '../run-store.js'
import { RunRef } from '../schemas/run.js'

const JobName = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) })

async function describeJobs(app: FastifyInstance, list: AnyJob[]) {
  const names = list.map((j) => j.name)
  const [schedules, lastRuns] = await Promise.all([app.scheduleStore.list(), app.runStore.lastByJob(names)])
  return list.map((job) => ({
    name: job.name,
    description: job.description,
    argsSchema: job.args as unknown as Record<string, unknown>,
    timeoutMs: job.timeoutMs,
    maxAttempts: job.maxAttempts,
    schedules: schedules.filter((s) => s.job === job.name).map((s) => s.name),
    lastRun: (lastRuns.get(job.name) ?? null) as Run | null,
  }))
}

const jobs: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'listJobs',
        summary: 'List the registered jobs',
        response: { 200: Page(Type.Ref('Job')) },
      },
    },
    async () => ({ items: await describeJobs(app, [...app.jobs.values()]), nextCursor: null }),
  )

  app.get(
    '/jobs/:name',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'getJob',
        summary: 'One job, with its args schema, schedules and last run',
        params: JobName,
        response: { 200: Type.Ref('Job'), ...errors(404) },
      },
    },
    async (request, reply) => {
      const job = app.jobs.get(request.params.name)
      if (!job) return reply.notFound(`job "${request.params.name}" does not exist`)
      const [described] = await describeJobs(app, [job])
      return described
    },
  )

  app.post(
    '/jobs/:name/runs',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'triggerJob',
        summary: 'Run a job now',
        description:
          "Validates `args` against the job's schema, records a queued run and starts it. Follow it with GET /runs/{id}.",
        params: JobName,
        body: Type.Object(
          { args: Type.Optional(JsonObject) },
          { additionalProperties: false, examples: [{ args: {} }] },
        ),
        response: { 202: RunRef, ...errors(400, 403, 404, 409) },
      },
      // The body is optional: `curl -X POST …/runs` with none runs the job with default args.
      preValidation: async (request) => {
        request.body ??= {}
      },
    },
    async (request, reply) => {
      const run = await app.runner.trigger(
        request.params.name,
        request.body.args ?? {},
        'manual',
        async (job, args) => {
          const action = job.triggerAction?.(args, app.config)
          if (action) await request.authorize(action)
        },
      )
      await request.audit('job.trigger', {
        target: request.params.name,
        after: { runId: run.id, args: run.args },
      })
      return reply.code(202).header('location', `/runs/${run.id}`).send(run)
    },
  )
}

export default jobs
