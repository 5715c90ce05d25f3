// Registry snapshots: what registry-sync found in the source tree, newest first, the latest one,
// or one by id.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors, IdParams, ListQuery, Page } from '../../lib/schemas.js'
import { RegistrySnapshotRef, RegistrySnapshotSummaryRef } from './schemas.js'
import { createRegistryService } from './store.js'

const SnapshotQuery = ListQuery({})

const registry: FastifyPluginAsyncTypebox = async (app) => {
  // Made on first use: the OpenAPI generator builds these routes without a database.
  const service = () => createRegistryService(app.sql)

  app.get(
    '/registry/snapshots',
    {
      schema: {
        tags: ['registry'],
        summary: 'List registry snapshots, newest first',
        description: 'Summaries only; GET /registry/snapshots/{id} has the full analysis.',
        querystring: SnapshotQuery,
        response: { 200: Page(RegistrySnapshotSummaryRef), ...errors(400) },
      },
    },
    async (request) => await service().list(request.query.limit ?? 50, request.query.cursor),
  )

  // A static segment: find-my-way matches it before the parametric /:id route.
  app.get(
    '/registry/snapshots/latest',
    {
      schema: {
        tags: ['registry'],
        summary: 'The newest registry snapshot',
        response: { 200: RegistrySnapshotRef, ...errors(404) },
      },
    },
    async (_request, reply) => (await service().latest()) ?? reply.notFound('no registry snapshot yet'),
  )

  app.get(
    '/registry/snapshots/:id',
    {
      schema: {
        tags: ['registry'],
        summary: 'One registry snapshot',
        params: IdParams,
        response: { 200: RegistrySnapshotRef, ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const snapshot = await service().get(request.params.id)
      return snapshot ?? reply.notFound(`registry snapshot ${request.params.id} does not exist`)
    },
  )
}

export default registry
