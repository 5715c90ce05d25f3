// Validates a job's args against its typebox schema, filling defaults, with messages that name the
// field ("args.type must be one of: hourly, daily, manual").
import type { TSchema } from 'typebox'
import Value from 'typebox/value'
import { InvalidInput } from '../lib/errors.js'

interface SchemaError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message: string
}

function describe(error: SchemaError, field: string): string {
  const where = `${field}${error.instancePath.replaceAll('/', '.')}`
  const p = error.params
  switch (error.keyword) {
    case 'additionalProperties':
      return `${where} has unknown field(s): ${(p.additionalProperties as string[]).join(', ')}`
    case 'required':
      return `${where} is missing required field(s): ${(p.requiredProperties as string[]).join(', ')}`
    case 'enum':
      return `${where} must be one of: ${(p.allowedValues as unknown[]).join(', ')}`
    case 'type':
      return `${where} must be ${p.type === 'object' ? 'a JSON object' : `of type ${String(p.type)}`}`
    default:
      return `${where} ${error.message}`
  }
}

// "schema is false" repeats additionalProperties; anyOf/const say less than the error beside them.
const NOISE = new Set(['boolean', 'anyOf', 'const'])

/** The args with defaults filled in; InvalidInput naming the field (`field` is where the args sit). */
export function validateArgs(schema: TSchema, args: unknown, field = 'args'): Record<string, unknown> {
  const value = Value.Default(schema, Value.Clone(args ?? {}))
  const errors = Value.Errors(schema, value) as SchemaError[]
  if (errors.length === 0) return value as Record<string, unknown>
  const useful = errors.filter((e) => !NOISE.has(e.keyword))
  const messages = (useful.length > 0 ? useful : errors).map((e) => describe(e, field))
  throw new InvalidInput([...new Set(messages)].join('; '))
}
