// The status dashboard: static files from dashboard/ at / and /ui/, and cronstrue's browser build
// from node_modules (nothing is fetched from the internet). The page calls the public API with the
// token the operator enters; it has no routes of its own. Hidden from the OpenAPI document.
import { createRequire } from 'node:module'
import path from 'node:path'
import fastifyStatic from '@fastify/static'
import fp from 'fastify-plugin'
import { packagePath } from '../lib/package-root.js'

const ROOT = packagePath('dashboard')
const CRONSTRUE = path.dirname(createRequire(import.meta.url).resolve('cronstrue/dist/cronstrue.min.js'))

export default fp(
  async (app) => {
    await app.register(fastifyStatic, {
      root: ROOT,
      prefix: '/ui/',
      index: false,
      schemaHide: true,
      cacheControl: true,
      maxAge: 60_000,
    })
    app.get('/', { schema: { hide: true } }, (_request, reply) =>
      reply.header('cache-control', 'no-cache').sendFile('index.html', ROOT),
    )
    app.get('/ui/vendor/cronstrue.min.js', { schema: { hide: true } }, (_request, reply) =>
      reply.sendFile('cronstrue.min.js', CRONSTRUE),
    )
  },
  { name: 'dashboard' },
)
