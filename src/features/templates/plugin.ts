// The templates' routes and the services behind them, created once: the template store and the
// configured embedder (search embeds every query with it).
import type { FastifyPluginAsync } from 'fastify'
import type { FeatureOptions } from '../../engine/feature.js'
import { createEmbedder } from './embeddings/create.js'
import type { Embedder } from './embeddings/embedder.js'
import routes from './routes.js'
import { createTemplatesService, type TemplatesService } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    templates: TemplatesService
    templateEmbedder: Embedder
  }
}

const templates: FastifyPluginAsync<FeatureOptions> = async (app, { documentationOnly }) => {
  if (!documentationOnly) {
    app.decorate('templates', createTemplatesService(app.sql))
    app.decorate('templateEmbedder', createEmbedder(app.config))
  }
  await app.register(routes)
}

export default templates
