// Live view: run state changes as Server-Sent Events, from every instance sharing the database
// (relayed through LISTEN/NOTIFY by src/engine/run-events.ts). `curl -N` or a browser's
// EventSource can watch jobs run without polling. The streams themselves (their end, their token's
// revocation, the per-token limit) are src/monitoring/event-streams.ts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { errors } from '../../lib/schemas.js'
import { replyWithEventStream } from './event-stream-reply.js'

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
          'A `text/event-stream`: each change of a run (its state, a new progress reading, why it ' +
          'waits), on any instance, is an event `run` whose data ' +
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
    // Untyped: the schema documents the stream as a string.
    async (request, reply) =>
      replyWithEventStream(app, request, reply as FastifyReply, { job: request.query.job }),
  )
}

export default events
