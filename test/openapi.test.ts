import fs from 'node:fs/promises'
import t from 'tap'
import YAML from 'yaml'
import { generateOpenApi, generateTypes, OPENAPI_FILE, TYPES_FILE } from '../scripts/openapi.js'
import { buildTestApp } from './helper.js'

t.test(
  'openapi.yaml is what the routes generate (run `npm run openapi` after changing a route)',
  async (t) => {
    const committed = await fs.readFile(OPENAPI_FILE, 'utf8')
    t.equal(await generateOpenApi(), committed)
  },
)

t.test('examples/steward-api.d.ts is what openapi.yaml generates (run `npm run openapi`)', async (t) => {
  const types = await generateTypes(await fs.readFile(OPENAPI_FILE, 'utf8'))
  t.equal(await fs.readFile(TYPES_FILE, 'utf8'), types)
  t.match(types, /"\/jobs\/\{name\}\/runs": \{/, 'the paths are typed')
})

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

t.test('every operation has a unique camelCase operationId, a summary and the local server', async (t) => {
  const spec = YAML.parse(await fs.readFile(OPENAPI_FILE, 'utf8'))
  const ids = new Map<string, string>()
  for (const [url, item] of Object.entries<Record<string, { operationId?: string; summary?: string }>>(
    spec.paths,
  )) {
    for (const [method, operation] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${url}`
      t.match(operation.operationId, /^[a-z][A-Za-z]+$/, `${where} has a camelCase operationId`)
      t.ok(operation.summary, `${where} has a summary`)
      const id = operation.operationId as string
      t.notOk(ids.has(id), `${id} is unique (also ${ids.get(id)})`)
      ids.set(id, where)
    }
  }
  t.ok(ids.size >= 32, `${ids.size} operations`)
  t.same(spec.servers, [
    { url: 'http://127.0.0.1:3000', description: 'npm start with the default HOST and PORT' },
  ])
})
