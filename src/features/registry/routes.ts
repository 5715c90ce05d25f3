// Registry snapshots: what registry-sync found in the source tree, newest first, the latest one,
// or one by id.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors, IdParams, ListQuery, Page } from '../../lib/schemas.js'
import { RegistrySnapshotRef, RegistrySnapshotSummaryRef } from './schemas.js'

const SnapshotQuery = ListQuery({})

const registry: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/registry/snapshots',
    {
      schema: {
        tags: ['registry'],
        operationId: 'listRegistrySnapshots',
        summary: 'List registry snapshots, newest first',
        description: 'Summaries only; GET /registry/snapshots/{id} has the full analysis.',
        querystring: SnapshotQuery,
        response: { 200: Page(RegistrySnapshotSummaryRef), ...errors(400) },
      },
    },
    async (request) => await app.registry.list(request.query.limit ?? 50, request.query.cursor),
  )

  // A static segment: find-my-way matches it before the parametric /:id route.
  app.get(
    '/registry/snapshots/latest',
    {
      schema: {
        tags: ['registry'],
        operationId: 'getLatestRegistrySnapshot',
        summary: 'The newest registry snapshot',
        response: { 200: RegistrySnapshotRef, ...errors(404) },
      },
    },
    async (_request, reply) => (await app.registry.latest()) ?? reply.notFound('no registry snapshot yet'),
  )

  app.get(
    '/registry/snapshots/:id',
    {
      schema: {
        tags: ['registry'],
        operationId: 'getRegistrySnapshot',
        summary: 'One registry snapshot',
        params: IdParams,
        response: { 200: RegistrySnapshotRef, ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const snapshot = await app.registry.get(request.params.id)
      return snapshot ?? reply.notFound(`registry snapshot ${request.params.id} does not exist`)
    },
  )
}

export default registry
