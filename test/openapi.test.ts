import fs from 'node:fs/promises'
import t from 'tap'
import YAML from 'yaml'
import { generateOpenApi, OPENAPI_FILE } from '../scripts/openapi.js'
import { buildTestApp } from './helper.js'

t.test(
  'openapi.yaml is what the routes generate (run `npm run openapi` after changing a route)',
  async (t) => {
    const committed = await fs.readFile(OPENAPI_FILE, 'utf8')
    t.equal(await generateOpenApi(), committed)
  },
)

t.test('the running app serves the same spec and Swagger UI', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const spec = (await app.inject('/openapi.json')).json()
  t.same(spec, YAML.parse(await fs.readFile(OPENAPI_FILE, 'utf8')))
  for (const path of [
    '/jobs',
    '/jobs/{name}',
    '/jobs/{name}/runs',
    '/runs',
    '/runs/{id}',
    '/runs/{id}/cancel',
    '/schedules',
    '/schedules/{name}',
    '/schedules/preview',
    '/health',
    '/ready',
  ]) {
    t.ok(spec.paths[path], `${path} is documented`)
  }
  t.ok(spec.paths['/jobs/{name}/runs'].post.requestBody, 'trigger documents its body')
  t.ok(spec.components.schemas.Run && spec.components.schemas.Schedule)
  const docs = await app.inject('/docs/')
  t.equal(docs.statusCode, 200)
  t.match(docs.headers['content-type'], /text\/html/)
  t.match(docs.body, /swagger/i)
})
