// Live view: run state changes as Server-Sent Events, from every instance sharing the database
// (relayed through LISTEN/NOTIFY by src/engine/run-events.ts). `curl -N` or a browser's
// EventSource can watch jobs run without polling.
import { PassThrough } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { errors } from '../../lib/schemas.js'

/** A client that lets this much pile up unread is dropped (it can reconnect), not buffered for ever. */
const MAX_BUFFERED = 4 * 1024 * 1024

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
        summary: 'Run state changes as they happen (Server-Sent Events)',
        description:
          'A `text/event-stream`: each change of a run, on any instance, is an event `run` whose data ' +
          'is the run as GET /runs/{id} shows it; a `: ping` comment comes every 15 s. An event `gap` ' +
          'says this server lost its database connection for a while and changes in between are ' +
          'missing (re-read GET /runs). The stream stays open until the client disconnects. Try ' +
          '`curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/events`.',
        querystring: EventsQuery,
        response: {
          200: {
            description: 'A stream of `event: run` messages and `: ping` comments',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...errors(400),
        },
      },
    },
    async (request, reply) => {
      const { job } = request.query
      const stream = new PassThrough()
      stream.on('error', () => {})
      let ended = false
      const write = (text: string) => {
        if (ended) return
        if (stream.readableLength > MAX_BUFFERED) {
          request.log.warn('event stream client is not reading; disconnecting it')
          return end()
        }
        stream.write(text)
      }
      const unsubscribe = app.runEvents.subscribe(
        (run) => {
          if (job === undefined || run.job === job) write(`event: run\ndata: ${JSON.stringify(run)}\n\n`)
        },
        {
          onEnd: () => end(),
          onGap: () =>
            write(
              'event: gap\ndata: {"message":"the server lost its database connection for a while; changes in between are not in this stream"}\n\n',
            ),
        },
      )
      const ping = setInterval(() => write(': ping\n\n'), app.config.eventsPingMs)
      function end(): void {
        if (ended) return
        ended = true
        clearInterval(ping)
        unsubscribe()
        if (!stream.destroyed) stream.end()
      }
      // The response closes when the client hangs up (or once the stream ended).
      reply.raw.on('close', end)
      // Sent at once, so clients (and proxies) see the stream open before the first change.
      write('retry: 3000\n: connected\n\n')
      // Untyped: the schema documents the stream as a string.
      return (reply as FastifyReply)
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache, no-transform')
        .header('x-accel-buffering', 'no')
        .send(stream)
    },
  )
}

export default events
