// The templates' routes and the services behind them, created once: the template store and search
// (the configured embedder with its cache of query vectors, kept for the life of the app).
import type { FastifyPluginAsync } from 'fastify'
import type { FeatureOptions } from '../../engine/feature.js'
import { createEmbedder } from './embeddings/create.js'
import routes from './routes.js'
import { createTemplateSearch, type TemplateSearch } from './search.js'
import { createTemplatesService, type TemplatesService } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    templates: TemplatesService
    templateSearch: TemplateSearch
  }
}

const templates: FastifyPluginAsync<FeatureOptions> = async (app, { documentationOnly }) => {
  if (!documentationOnly) {
    const store = createTemplatesService(app.sql)
    app.decorate('templates', store)
    app.decorate('templateSearch', createTemplateSearch(store, createEmbedder(app.config)))
  }
  await app.register(routes)
}

export default templates
