// Live view: run state changes as Server-Sent Events, from every instance sharing the database
// (relayed through LISTEN/NOTIFY by src/engine/run-events.ts). `curl -N` or a browser's
// EventSource can watch jobs run without polling. The streams themselves (their end, their token's
// revocation, the per-token limit) are src/monitoring/event-streams.ts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { bearerToken } from '../../http/auth/tokens.js'
import { errors } from '../../lib/schemas.js'

const EventsQuery = Type.Object(
  {
    job: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Only runs of this job.' })),
  },
  { additionalProperties: false },
)

const events: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/events',
    {
      // A HEAD request would hold a stream nobody reads.
      exposeHeadRoute: false,
      schema: {
        tags: ['runs'],
        operationId: 'streamEvents',
        summary: 'Run state changes as they happen (Server-Sent Events)',
        description:
          'A `text/event-stream`: each change of a run, on any instance, is an event `run` whose data ' +
          'is the run as GET /runs/{id} shows it; a `: ping` comment comes every 15 s. An event `gap` ' +
          'says this server lost its database connection for a while and changes in between are ' +
          'missing (re-read GET /runs). The stream stays open until the client disconnects, or until ' +
          'its token is revoked (on any instance): then a last event `end` says so and the stream ' +
          'closes. One token may hold EVENTS_STREAMS_PER_TOKEN streams (10 by default) on each ' +
          'server instance; one more gets 429. Try ' +
          '`curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/events`.',
        querystring: EventsQuery,
        response: {
          200: {
            description: 'A stream of `event: run` messages and `: ping` comments',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...errors(400, 429),
        },
      },
    },
    async (request, reply) => {
      const token = bearerToken(request.headers.authorization)
      const principal = request.principal
      // Both set by the auth hook (this route needs a viewer token); the stream re-checks the token.
      if (token === null || principal === null)
        return reply.unauthorized('send "Authorization: Bearer <token>"')
      const opened = app.eventStreams.open({
        token,
        principal,
        job: request.query.job,
        connection: reply.raw,
        log: request.log,
      })
      if ('refused' in opened) return reply.tooManyRequests(opened.refused)
      // Untyped: the schema documents the stream as a string.
      return (reply as FastifyReply)
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache, no-transform')
        .header('x-accel-buffering', 'no')
        .send(opened.stream)
    },
  )
}

export default events
