// Jobs: what can run, with its limits, the schedules that run it and its last run; trigger one by
// hand (optionally unique, optionally followed by a chain); change its limits.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { InvalidInput } from '../../lib/errors.js'
import { errors, JsonObject, Page } from '../../lib/schemas.js'
import type { AnyJob } from '../job.js'
import { defaultLimits, LIMIT_BOUNDS } from '../job-settings.js'
import type { Run } from '../run-store.js'
import { JobPatch } from '../schemas/job.js'
import { RunRef, Then } from '../schemas/run.js'

const JobName = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) })

async function describeJobs(app: FastifyInstance, list: AnyJob[]) {
  const names = list.map((j) => j.name)
  const [schedules, lastRuns] = await Promise.all([
    app.scheduleStore.namesByJob(names),
    app.runStore.lastByJob(names),
  ])
  return list.map((job) => ({
    name: job.name,
    description: job.description,
    argsSchema: job.args as unknown as Record<string, unknown>,
    ...app.jobSettings.limits(job),
    defaults: defaultLimits(job),
    schedules: schedules.get(job.name) ?? [],
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
          "Validates `args` against the job's schema, records a queued run and starts it as soon as the " +
          "job's concurrency and the instance's MAX_CONCURRENT_RUNS allow (until then it waits, " +
          'oldest first, with `waitingFor` saying why). Follow it with GET /runs/{id}. With ' +
          '`unique: true`, a queued or running run of the job with the same args is returned (200) ' +
          'instead of adding another.',
        params: JobName,
        body: Type.Object(
          {
            args: Type.Optional(JsonObject),
            unique: Type.Optional(
              Type.Boolean({
                description:
                  'Answer 200 with the queued or running run of this job with the same args, if there is one.',
              }),
            ),
            then: Type.Optional(Then),
          },
          {
            additionalProperties: false,
            examples: [
              { args: {} },
              { args: { type: 'manual' }, unique: true },
              { args: { force: true }, then: [{ job: 'template-embed', args: { missing: true } }] },
            ],
          },
        ),
        response: {
          200: { ...RunRef, description: 'unique: the run already queued or running' },
          202: { ...RunRef, description: 'A new run, queued' },
          ...errors(400, 403, 404, 409),
        },
      },
      // The body is optional: `curl -X POST …/runs` with none runs the job with default args.
      preValidation: async (request) => {
        request.body ??= {}
      },
    },
    async (request, reply) => {
      const { args = {}, unique, then } = request.body
      const { run, created } = await app.runner.trigger(request.params.name, args, {
        unique,
        then,
        authorize: async (job, validArgs) => {
          const action = job.triggerAction?.(validArgs, app.config)
          if (action) await request.authorize(action)
        },
      })
      if (!created) return reply.code(200).header('location', `/runs/${run.id}`).send(run)
      await request.audit('job.trigger', {
        target: request.params.name,
        after: { runId: run.id, args: run.args, ...(run.then ? { then: run.then } : {}) },
      })
      return reply.code(202).header('location', `/runs/${run.id}`).send(run)
    },
  )

  app.patch(
    '/jobs/:name',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'updateJob',
        summary: "Change a job's limits (applies on every instance within 2 s)",
        description:
          'concurrency (1-100), maxAttempts (1-20) and timeoutMs (1000-86400000); null restores the ' +
          "job's default. Fields left out keep their value. Runs already queued keep their attempts.",
        params: JobName,
        body: JobPatch,
        response: { 200: Type.Ref('Job'), ...errors(400, 404) },
      },
      // Ajv's type coercion would read 0, false or "" as null (restore the default): refuse them first.
      preValidation: async (request) => {
        const body = (request.body ?? {}) as Record<string, unknown>
        for (const [key, { min, max }] of Object.entries(LIMIT_BOUNDS)) {
          const value = body[key]
          if (value === undefined || value === null) continue
          if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
            throw new InvalidInput(
              `body.${key} must be an integer from ${min} to ${max}, or null for the job's default (got ${JSON.stringify(value)})`,
            )
          }
        }
      },
    },
    async (request, reply) => {
      const job = app.jobs.get(request.params.name)
      if (!job) return reply.notFound(`job "${request.params.name}" does not exist`)
      const before = app.jobSettings.limits(job)
      const after = await app.jobSettings.update(job, request.body)
      await request.audit('job.update', { target: job.name, before, after })
      // A higher limit may let waiting runs start at once.
      app.runner.pumpSoon()
      const [described] = await describeJobs(app, [job])
      return described
    },
  )
}

export default jobs
