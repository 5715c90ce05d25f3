// What every request body and parameter goes through before a route sees it: JSON bodies (an empty
// one is no body), numeric parameters that must be finite, no NUL characters, and since/until ranges
// that must not be inverted.
import type { FastifyInstance, FastifyRequest } from 'fastify'

/** Registers the JSON parser and the finite-number check on the app. */
export function parseRequests(app: FastifyInstance): void {
  // An empty JSON body (curl -X POST -H 'content-type: application/json', or Swagger UI with the
  // editor cleared) means "no body", not a parse error; the routes fill in their defaults.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString()
    if (text.trim() === '') return done(null, undefined)
    return parseJson(request, text, done)
  })
  // Every body is JSON: a text/plain one (curl -d without -H) gets the 415 that says so, not "body
  // must be an object".
  app.removeContentTypeParser('text/plain')
  app.addHook('preValidation', rejectInfiniteNumbers)
  app.addHook('preValidation', rejectNulCharacters)
  app.addHook('preHandler', rejectInvertedRanges)
}

/** `since` after `until` can match nothing: say so rather than answer an empty page. */
async function rejectInvertedRanges(request: FastifyRequest): Promise<void> {
  const { since, until } = (request.query ?? {}) as { since?: unknown; until?: unknown }
  if (typeof since !== 'string' || typeof until !== 'string') return
  if (Date.parse(since) > Date.parse(until)) {
    throw Object.assign(
      new Error(`querystring.since (${since}) is later than querystring.until (${until})`),
      {
        statusCode: 400,
      },
    )
  }
}

type PropertySchemas = Record<string, { type?: string }>

/**
 * Ajv coerces "1e400" in a query or path to Infinity and then skips the range checks (ajv 8.20), so
 * such values would reach the database. Numeric params must parse to a finite number.
 */
async function rejectInfiniteNumbers(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema
  const parts = [
    ['params', schema?.params, request.params],
    ['querystring', schema?.querystring, request.query],
  ] as const
  for (const [part, partSchema, values] of parts) {
    const properties = (partSchema as { properties?: PropertySchemas } | undefined)?.properties ?? {}
    for (const [key, property] of Object.entries(properties)) {
      const raw = (values as Record<string, unknown> | undefined)?.[key]
      const numeric = property.type === 'integer' || property.type === 'number'
      if (numeric && typeof raw === 'string' && Math.abs(Number(raw)) === Number.POSITIVE_INFINITY) {
        throw Object.assign(new Error(`${part}/${key} must be a finite number`), { statusCode: 400 })
      }
    }
  }
}

/**
 * PostgreSQL text and jsonb cannot hold U+0000 (a query with one fails, "invalid byte sequence"), so
 * a NUL anywhere in the path, query or body is refused up front, naming where it is.
 */
async function rejectNulCharacters(request: FastifyRequest): Promise<void> {
  const where =
    nulIn(request.params, 'params') ?? nulIn(request.query, 'querystring') ?? nulIn(request.body, 'body')
  if (where) {
    throw Object.assign(
      new Error(`${where} contains a NUL character (\\u0000), which PostgreSQL cannot store: remove it`),
      { statusCode: 400 },
    )
  }
}

/** The path of the first string (or key) holding a NUL, e.g. "body.args.name"; null if none. Walks
 * with its own stack: a 1 MiB body can nest deeper than the call stack goes. */
function nulIn(root: unknown, rootPath: string): string | null {
  const stack: [unknown, string][] = [[root, rootPath]]
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [value, path] = next
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return path
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (key.includes('\u0000')) return `${path} (a property name)`
        stack.push([item, Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`])
      }
    }
  }
  return null
}
