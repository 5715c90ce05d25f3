// Prometheus metrics. Open, unless METRICS_TOKEN is set: then a scrape needs that bearer token
// (a separate secret, so a Prometheus server holds no API token).
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../../lib/schemas.js'

const digest = (text: string) => createHash('sha256').update(text).digest()

/** Constant-time: both sides are hashed to 32 bytes first, so not even the length leaks. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return timingSafeEqual(digest(match?.[1] ?? ''), digest(token)) && match !== null
}

const metrics: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        description:
          'Prometheus text format: runs by job and state, queued and running runs, run durations, ' +
          'per schedule its last success, next fire and health, the newest backup of each database, ' +
          'and process metrics. When the server has METRICS_TOKEN set, send ' +
          '`Authorization: Bearer <METRICS_TOKEN>`.',
        response: {
          200: {
            description: 'Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          ...errors(401),
        },
      },
    },
    async (request, reply) => {
      const token = app.config.metricsToken
      if (token !== undefined && !tokenMatches(request.headers.authorization, token)) {
        reply.header('www-authenticate', 'Bearer realm="steward-metrics"')
        return reply.unauthorized('send "Authorization: Bearer <METRICS_TOKEN>"')
      }
      const text = await app.metrics.render()
      return reply.type(app.metrics.contentType).send(text)
    },
  )
}

export default metrics
