// Templates: what template-sync stored, one with its text, and search by embedding similarity.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, IdParams, Limit, ListQuery, Nullable, Page } from '../../lib/schemas.js'
import { SearchHit, TemplateRef, TemplateSummaryRef } from './schemas.js'
import { QUERY_CACHE_TTL_MS } from './search.js'

const TemplateQuery = ListQuery({})

const SearchQuery = Type.Object(
  {
    q: Type.String({ minLength: 1, maxLength: 500, description: 'Text to find similar templates to.' }),
    limit: Type.Optional({ ...Limit, default: 10, description: 'Hits (1-500).' }),
  },
  { additionalProperties: false },
)

const SearchReply = Type.Object({
  items: Type.Array(SearchHit),
  nextCursor: Nullable(Type.String({ description: 'Always null: search answers one page.' })),
  model: Type.String({ description: 'Only templates embedded with this model are ranked.' }),
})

const templates: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/templates',
    {
      schema: {
        tags: ['templates'],
        operationId: 'listTemplates',
        summary: 'List templates, in id order',
        querystring: TemplateQuery,
        response: { 200: Page(TemplateSummaryRef), ...errors(400) },
      },
    },
    async (request) => await app.templates.list(request.query.limit ?? 50, request.query.cursor),
  )

  // A static segment: find-my-way matches it before the parametric /:id route. Each search may call
  // the paid embeddings server, so it has a per-token limit of its own (keyed by token name in the
  // auth plugin's rate limiter; describeAccess keeps this config on GET routes).
  const perMinute = app.config.templateSearchPerMinute
  app.get(
    '/templates/search',
    {
      config: { rateLimit: { max: perMinute, timeWindow: 60_000 } },
      // A HEAD route would run the same handler with a limit (a bucket) of its own, doubling what a
      // token may spend; a search has nothing worth a HEAD.
      exposeHeadRoute: false,
      schema: {
        tags: ['templates'],
        operationId: 'searchTemplates',
        summary: 'Templates most similar to a text',
        description:
          'Embeds q with the configured provider and ranks embedded templates by cosine similarity. ' +
          'Templates not yet embedded (template-embed) are not found. A repeated query within ' +
          `${QUERY_CACHE_TTL_MS / 1000} s reuses its embedding; each token may search ` +
          'TEMPLATE_SEARCH_PER_MINUTE times a minute (default 30), then gets 429.',
        querystring: SearchQuery,
        response: { 200: SearchReply, ...errors(400, 502) },
      },
    },
    async (request) => {
      const { q, limit = 10 } = request.query
      return await app.templateSearch.search(q, limit)
    },
  )

  app.get(
    '/templates/:id',
    {
      schema: {
        tags: ['templates'],
        operationId: 'getTemplate',
        summary: 'One template, with its text',
        params: IdParams,
        response: { 200: TemplateRef, ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const template = await app.templates.get(request.params.id)
      return template ?? reply.notFound(`template ${request.params.id} does not exist`)
    },
  )
}

export default templates
