// Schema errors that say what to fix: the field by its path ("querystring.state", "body.args.type"),
// and what it may be ("must be one of: queued, running, …"; "has unknown property 'crn'; allowed:
// cron, timezone, …"), instead of ajv's "must be equal to one of the allowed values". Used as
// Fastify's schemaErrorFormatter; ajv runs with `verbose` so each error carries its schema.

interface AjvError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
  schema?: unknown
  parentSchema?: { properties?: Record<string, unknown>; anyOf?: { const?: unknown }[] }
}

/** One line for the first error that says something (ajv stops at the first failing keyword). */
export function describeSchemaErrors(errors: readonly AjvError[], part: string): string {
  const consts = allowedConstants(errors)
  const error = errors.find((e) => !NOISE.has(e.keyword)) ?? errors[0]
  if (!error) return `${part} is invalid`
  const where = `${part}${error.instancePath.replaceAll('/', '.')}`
  if (consts && (error.keyword === 'const' || error.keyword === 'type')) {
    return `${where} must be one of: ${consts.join(', ')}`
  }
  return `${where} ${explain(error)}`
}

// anyOf reports each branch and then itself; the branches say more (see allowedConstants).
const NOISE = new Set(['anyOf', 'if', 'then', 'else'])

function explain(error: AjvError): string {
  const p = error.params
  switch (error.keyword) {
    case 'additionalProperties': {
      const allowed = Object.keys(error.parentSchema?.properties ?? {})
      const list = allowed.length > 0 ? `; allowed: ${allowed.join(', ')}` : '; it takes no properties'
      return `has unknown property '${String(p.additionalProperty)}'${list}`
    }
    case 'required':
      return `is missing the required property '${String(p.missingProperty)}'`
    case 'enum':
      return `must be one of: ${(p.allowedValues as unknown[]).map(String).join(', ')}`
    case 'type':
      return `must be ${article(String(p.type))}`
    case 'format':
      return p.format === 'date-time'
        ? 'must be an ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z'
        : `must be a valid ${String(p.format)}`
    case 'pattern':
      return `must match the pattern ${String(p.pattern)}`
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long`
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters long`
    default:
      return error.message ?? 'is invalid'
  }
}

function article(type: string): string {
  if (type === 'null') return 'null'
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`
}

/** A union of literals (typebox's Union of Literal) fails as anyOf over const: list the values. */
function allowedConstants(errors: readonly AjvError[]): string[] | null {
  const anyOf = errors.find((e) => e.keyword === 'anyOf')
  const branches = (anyOf?.schema as { const?: unknown }[] | undefined) ?? []
  if (branches.length === 0 || !branches.every((b) => b && typeof b === 'object' && 'const' in b)) return null
  return branches.map((b) => String(b.const))
}

/** Fastify's schemaErrorFormatter: a 400 whose message names the field and what it may be. */
export function schemaErrorFormatter(errors: readonly unknown[], dataVar: string): Error {
  return new Error(describeSchemaErrors(errors as AjvError[], dataVar))
}
