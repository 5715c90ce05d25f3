// Schema compilers that compile a schema when a request first needs it, and each distinct schema once.
// Fastify's own compile every route's request and response schemas while the app is built: here that
// was 294 serializer builds for 28 distinct schemas (224 of them the same `{ $ref: 'Error' }`, once
// per route and status) and 51 validator compiles for 22 — about 0.8 s of a 2.7 s start. The
// compilers themselves are Fastify's (ajv, fast-json-stringify); only when and how often changes.
// `eager` compiles at build time as Fastify does, so a test can prove every schema compiles.
import AjvCompiler from '@fastify/ajv-compiler'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { FastifyServerOptions } from 'fastify'

interface RouteSchema {
  schema: unknown
  method: string
  url: string
  httpPart?: string
  httpStatus?: string
}

type Validate = ((data: unknown) => unknown) & { errors?: unknown }
type Serialize = (data: unknown) => string

type Factories = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>

export function schemaCompilers({ eager = false }: { eager?: boolean } = {}): Factories {
  const validators = AjvCompiler()
  const serializers = SerializerSelector()
  return {
    buildValidator(externalSchemas, ajvOptions) {
      // The ajv instance itself (formats, every shared schema added) costs ~80 ms: made at first use too.
      let compiler: ((route: RouteSchema) => Validate) | undefined
      const compile = (route: RouteSchema) => {
        compiler ??= validators(externalSchemas, ajvOptions) as unknown as (route: RouteSchema) => Validate
        return compiler(route)
      }
      return once((route: RouteSchema) => (eager ? compile(route) : lazyValidator(() => compile(route))))
    },
    buildSerializer(externalSchemas, serializerOptions) {
      const compile = serializers(externalSchemas, serializerOptions) as unknown as (
        route: RouteSchema,
      ) => Serialize
      return once((route: RouteSchema) => (eager ? compile(route) : lazySerializer(() => compile(route))))
    },
  } as Factories
}

/** One function per distinct schema (by its JSON), whichever route and part or status asks. */
function once<F>(build: (route: RouteSchema) => F): (route: RouteSchema) => F {
  const built = new Map<string, F>()
  return (route) => {
    const key = JSON.stringify(route.schema)
    let fn = built.get(key)
    if (fn === undefined) {
      fn = build(route)
      built.set(key, fn)
    }
    return fn
  }
}

/** Fastify reads a failed validation's reasons from the function's `errors`: pass them through. */
function lazyValidator(compile: () => Validate): Validate {
  let fn: Validate | undefined
  const validate: Validate = (data) => {
    fn ??= compile()
    const result = fn(data)
    validate.errors = fn.errors
    return result
  }
  return validate
}

function lazySerializer(compile: () => Serialize): Serialize {
  let fn: Serialize | undefined
  return (data) => {
    fn ??= compile()
    return fn(data)
  }
}
