// Answers a request with one of this instance's event streams (src/monitoring/event-streams.ts):
// the token the stream keeps re-checking, the per-token limit as a 429, and the headers that keep
// proxies from buffering it. GET /events and GET /runs/{id}/logs?follow=true both answer this way.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { bearerToken } from '../../http/auth/tokens.js'
import type { StreamRequest } from '../event-streams.js'

export function replyWithEventStream(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  what: Pick<StreamRequest, 'job' | 'feed'> = {},
): FastifyReply {
  const token = bearerToken(request.headers.authorization)
  const principal = request.principal
  // Both set by the auth hook (these routes need a viewer token); the stream re-checks the token.
  if (token === null || principal === null) return reply.unauthorized('send "Authorization: Bearer <token>"')
  const opened = app.eventStreams.open({ token, principal, connection: reply.raw, log: request.log, ...what })
  if ('refused' in opened) return reply.tooManyRequests(opened.refused)
  return reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache, no-transform')
    .header('x-accel-buffering', 'no')
    .send(opened.stream)
}
