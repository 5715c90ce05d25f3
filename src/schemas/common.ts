// Schemas shared by several routes.
import { type TSchema, Type } from 'typebox'

export const ErrorReply = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.Optional(Type.String()),
    error: Type.String(),
    message: Type.String(),
  },
  { $id: 'Error', description: 'Fastify error reply' },
)

export const Timestamp = Type.String({ format: 'date-time' })

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** Any JSON value (job args and results). */
export const Json = Type.Unknown()

export const JsonObject = Type.Record(Type.String(), Type.Unknown())

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    nextCursor: Nullable(
      Type.String({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
    ),
  })

export const Limit = Type.Integer({
  minimum: 1,
  maximum: 500,
  default: 50,
  description: 'Page size (1-500).',
})
export const Cursor = Type.String({
  minLength: 1,
  maxLength: 200,
  description: 'nextCursor of the previous page.',
})

/** Error replies a route can send, by status code. */
export const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, Type.Ref('Error')])) as Record<number, TSchema>
