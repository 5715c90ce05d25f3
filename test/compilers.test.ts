// Schemas are compiled when a request first needs them, each distinct one once (src/http/compilers.ts).
// Lazy compiling would hide a schema that does not compile until its route is called: the first test
// compiles every route's schemas at build time, as Fastify would, so such a schema fails here.
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { schemaCompilers } from '../src/http/compilers.js'

const AJV = { customOptions: { removeAdditional: false, strictNumbers: true, verbose: true } }
const route = (schema: unknown, part = 'body') => ({ schema, method: 'POST', url: '/x', httpPart: part })

t.test('every route’s request and response schemas compile', async (t) => {
  const app = await buildApp(loadConfig({}), { documentationOnly: true, compileSchemasEagerly: true })
  t.teardown(() => app.close())
  await app.ready()
  t.ok(app.printRoutes().includes('runs'), 'with the routes registered')
})

t.test('a validator compiles at its first use and reports why data fails', async (t) => {
  const { buildValidator } = schemaCompilers()
  const compilerFor = buildValidator?.({}, AJV as never) as unknown as (r: unknown) => {
    (data: unknown): boolean
    errors?: { keyword: string; instancePath: string }[]
  }
  const schema = { type: 'object', properties: { n: { type: 'integer' } }, additionalProperties: false }
  const validate = compilerFor(route(schema))
  t.equal(validate({ n: 1 }), true)
  t.equal(validate({ n: 'x' }), false)
  t.match(validate.errors, [{ keyword: 'type', instancePath: '/n' }], 'errors are passed through for Fastify')
  t.equal(validate({ n: 2 }), true)
  t.equal(
    compilerFor(route({ ...schema }, 'querystring')),
    validate,
    'an equal schema anywhere is compiled once',
  )
  t.not(compilerFor(route({ type: 'string' })), validate)

  const broken = compilerFor(route({ $ref: 'Missing' }))
  t.throws(() => broken({}), /Missing/, 'a schema that does not compile fails at its first use')
})

t.test('eager compilers compile at build time, as Fastify does', async (t) => {
  const { buildValidator, buildSerializer } = schemaCompilers({ eager: true })
  const validators = buildValidator?.({}, AJV as never) as unknown as (r: unknown) => unknown
  t.throws(() => validators(route({ $ref: 'Missing' })), /Missing/)
  const serializers = buildSerializer?.({}, {}) as unknown as (r: unknown) => (data: unknown) => string
  t.equal(
    serializers(route({ type: 'object', properties: { a: { type: 'string' } } }))({ a: 'b', c: 1 }),
    '{"a":"b"}',
  )
})

t.test('a serializer compiles at its first use, once per distinct schema', async (t) => {
  const { buildSerializer } = schemaCompilers()
  const external = { Error: { $id: 'Error', type: 'object', properties: { message: { type: 'string' } } } }
  const serializers = buildSerializer?.(external, {}) as unknown as (r: unknown) => (data: unknown) => string
  const serialize = serializers(route({ $ref: 'Error' }))
  t.equal(serializers(route({ $ref: 'Error' })), serialize, 'each route’s { $ref: Error } is one serializer')
  t.equal(serialize({ message: 'no', secret: 'x' }), '{"message":"no"}', 'only what the schema lists')
})
