// Liveness and readiness probes.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

export const HEALTH_TAG = { name: 'health', description: 'Probes' }

const Readiness = Type.Object({
  status: Type.Enum(['ready', 'unavailable']),
  database: Type.Enum(['ok', 'unreachable']),
  scheduler: Type.Enum(['running', 'stopped', 'disabled']),
  instance: Type.String(),
})

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health',
    {
      schema: {
        tags: ['health'],
        operationId: 'getHealth',
        summary: 'Liveness: the process is up',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  )

  app.get(
    '/ready',
    {
      schema: {
        tags: ['health'],
        operationId: 'getReadiness',
        summary: 'Readiness: database reachable and scheduler running',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      // A down database can take connect_timeout to fail; a probe must answer sooner.
      const database = await Promise.race([
        app.sql`select 1`.then(() => 'ok' as const),
        new Promise<'unreachable'>((resolve) => setTimeout(resolve, 2000, 'unreachable')),
      ]).catch(() => 'unreachable' as const)
      const scheduler = !app.config.schedulerEnabled
        ? ('disabled' as const)
        : app.scheduler.isRunning()
          ? ('running' as const)
          : ('stopped' as const)
      const ready = database === 'ok' && scheduler !== 'stopped'
      return reply.code(ready ? 200 : 503).send({
        status: ready ? 'ready' : 'unavailable',
        database,
        scheduler,
        instance: app.config.instanceId,
      })
    },
  )
}

export default health
