// Schemas shared by several routes.
import { type TProperties, type TSchema, Type } from 'typebox'

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

/** `{id}` in a path: a row id. */
export const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) })

/** The query of a keyset-paginated list: its own filters, then `limit` and `cursor`; nothing else. */
export const ListQuery = <P extends TProperties>(filters: P) =>
  Type.Object(
    { ...filters, limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
    { additionalProperties: false },
  )

/** Error replies a route can send, by status code. */
export const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, Type.Ref('Error')])) as Record<number, TSchema>
