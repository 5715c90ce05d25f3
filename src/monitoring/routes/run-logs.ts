// A run's own log: what its job wrote through ctx.log, with how the run started and ended. Read in
// pages, or followed live as Server-Sent Events while the run runs on any instance (the stream's
// lifecycle, token checks and limits are those of GET /events: src/monitoring/event-streams.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { LOG_LEVELS } from '../../engine/run-log.js'
import { errors, IdParams, Json, Nullable, Timestamp } from '../../lib/schemas.js'
import { replyWithEventStream } from './event-stream-reply.js'

/** Registered with the other shared schemas (app.ts): one ajv instance for every route. */
export const LogLine = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, description: 'Its place in the run’s log, from 1.' }),
    at: Timestamp,
    level: Type.Enum([...LOG_LEVELS]),
    message: Type.String(),
    fields: Nullable({
      ...Json,
      description: 'What the job logged with the message (numbers, names, an error).',
    }),
  },
  { $id: 'LogLine' },
)

const LogQuery = Type.Object(
  {
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2 ** 31 - 1,
        description: 'Only lines after this seq (a previous page’s nextCursor, or the last seq seen).',
      }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 200 })),
    follow: Type.Optional(
      Type.Boolean({
        description:
          'true, with `Accept: text/event-stream`: stream the lines after `after` (`event: log`), then each ' +
          'new line as the job writes it, then `event: end` with the run once it has ended.',
      }),
    ),
  },
  { additionalProperties: false },
)

const LogPage = Type.Object({
  items: Type.Array(Type.Ref('LogLine')),
  nextCursor: Nullable(
    Type.String({ description: 'More lines may follow: pass it as `after`. null: none yet.' }),
  ),
})

const runLogs: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/runs/:id/logs',
    {
      // A HEAD request would hold a stream nobody reads.
      exposeHeadRoute: false,
      schema: {
        tags: ['runs'],
        operationId: 'getRunLogs',
        summary: 'A run’s own log, oldest line first; or followed live',
        description:
          'What the run’s job logged, with a line when the run started and one when its job ended, in ' +
          'order (`seq`). A run keeps RUN_LOG_MAX_LINES lines (10,000 by default) and RUN_LOG_MAX_BYTES ' +
          '(1 MiB); past that, one line says how many were dropped. Lines are deleted with their run. ' +
          'With `follow=true` and `Accept: text/event-stream`, the answer is a stream: `event: log` for ' +
          'each line (data: the line), `: ping` comments, and `event: end` (data: the run) once the run ' +
          'has ended, wherever it runs (`event: gone` instead if the run is deleted meanwhile); then ' +
          'the stream closes. Try `curl -N -H "Accept: text/event-stream" ' +
          '-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:3000/runs/1/logs?follow=true"`.',
        params: IdParams,
        querystring: LogQuery,
        response: {
          200: {
            description: 'A page of lines; with follow=true, a stream of `event: log` and `event: end`',
            content: {
              'application/json': { schema: LogPage },
              'text/event-stream': { schema: { type: 'string' } },
            },
          },
          ...errors(400, 404, 406, 429),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params
      const { limit = 200, follow = false } = request.query
      // An EventSource that reconnects says where it was.
      const resumed = Number(request.headers['last-event-id'])
      const after =
        follow && Number.isSafeInteger(resumed) && resumed > 0 ? resumed : (request.query.after ?? 0)
      const run = await app.runStore.get(id)
      if (!run) return reply.notFound(`run ${id} does not exist`)
      if (!follow) {
        const items = await app.runLogs.page(id, after, limit)
        const last = items[items.length - 1]
        return { items, nextCursor: items.length === limit && last ? String(last.seq) : null }
      }
      if (!/text\/event-stream/.test(request.headers.accept ?? ''))
        return reply.notAcceptable(
          'follow=true answers with Server-Sent Events: send "Accept: text/event-stream" (or leave follow out for a page of lines)',
        )
      return replyWithEventStream(app, request, reply as FastifyReply, {
        feed: (stream) =>
          app.runLogs.follow(run, after, {
            line: (line) => stream.write(`event: log\nid: ${line.seq}\ndata: ${JSON.stringify(line)}\n\n`),
            end: (ended) => stream.end(`event: end\ndata: ${JSON.stringify(ended)}\n\n`),
            gone: (runId) =>
              stream.end(
                `event: gone\ndata: ${JSON.stringify({ id: runId, message: `run ${runId} was deleted` })}\n\n`,
              ),
          }),
      })
    },
  )
}

export default runLogs
