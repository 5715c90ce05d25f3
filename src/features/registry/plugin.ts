// The code registry's routes and the snapshot store behind them, created once.
import type { FastifyPluginAsync } from 'fastify'
import type { FeatureOptions } from '../../engine/feature.js'
import routes from './routes.js'
import { createRegistryService, type RegistryService } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    registry: RegistryService
  }
}

const registry: FastifyPluginAsync<FeatureOptions> = async (app, { documentationOnly }) => {
  if (!documentationOnly) app.decorate('registry', createRegistryService(app.sql))
  await app.register(routes)
}

export default registry
