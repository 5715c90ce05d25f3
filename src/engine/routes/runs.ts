// Runs: the history of every execution, newest first, and cancelling one in progress.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, IdParams, ListQuery, Page, Timestamp } from '../../lib/schemas.js'
import { RunRef, RunState, RunTrigger } from '../schemas/run.js'

const RunQuery = ListQuery({
  job: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  schedule: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  state: Type.Optional(RunState),
  trigger: Type.Optional(RunTrigger),
  since: Type.Optional({ ...Timestamp, description: 'Queued at or after (ISO-8601).' }),
  until: Type.Optional({ ...Timestamp, description: 'Queued before (ISO-8601).' }),
  parentId: Type.Optional(
    Type.Integer({ minimum: 1, description: 'Only the chain steps that followed this run.' }),
  ),
})

const runs: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/runs',
    {
      schema: {
        tags: ['runs'],
        operationId: 'listRuns',
        summary: 'List runs, newest first',
        querystring: RunQuery,
        response: { 200: Page(RunRef), ...errors(400) },
      },
    },
    async (request, reply) => {
      const { limit = 50, cursor, ...filter } = request.query
      const key = JSON.stringify([
        limit,
        cursor,
        filter.job,
        filter.schedule,
        filter.state,
        filter.trigger,
        filter.since,
        filter.until,
        filter.parentId,
      ])
      const fresh = /no-cache|no-store|max-age=0/.test(request.headers['cache-control'] ?? '')
      const [page, status] = await app.runPages.get(
        key,
        async () => reply.serialize(await app.runStore.list(filter, limit, cursor)) as string,
        fresh,
      )
      // RFC 9211; `Cache-Control: no-cache` on the request always reads the database.
      reply.header('cache-status', status === 'hit' ? 'steward; hit' : 'steward; fwd=miss')
      return reply.type('application/json; charset=utf-8').send(page as never)
    },
  )

  app.get(
    '/runs/:id',
    {
      schema: {
        tags: ['runs'],
        operationId: 'getRun',
        summary: 'One run',
        params: IdParams,
        response: { 200: RunRef, ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const run = await app.runStore.get(request.params.id)
      return run ?? reply.notFound(`run ${request.params.id} does not exist`)
    },
  )

  app.post(
    '/runs/:id/cancel',
    {
      schema: {
        tags: ['runs'],
        operationId: 'cancelRun',
        summary: 'Cancel a queued or running run',
        description: 'A queued run is cancelled at once; a running one is aborted through its signal.',
        params: IdParams,
        response: { 202: RunRef, ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const run = await app.runner.cancel(request.params.id)
      await request.audit('run.cancel', { target: run.id, after: { job: run.job, state: run.state } })
      return reply.code(202).send(run)
    },
  )
}

export default runs
