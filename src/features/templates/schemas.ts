// Templates as the API shows them: summaries in lists, the full text for one, search hits.
import { type Static, Type } from 'typebox'
import { JsonObject, Nullable, Timestamp } from '../../lib/schemas.js'

const Embedding = Type.Object(
  {
    model: Type.String(),
    dimensions: Type.Integer(),
    embeddedAt: Timestamp,
    stale: Type.Boolean({ description: 'The template changed since it was embedded.' }),
    storage: Type.Enum(['vector', 'real[]'], {
      description: 'vector: a pgvector column (the server has pgvector); real[]: a plain array.',
    }),
  },
  { description: 'The stored vector (template-embed); null until the template is embedded.' },
)

const fields = {
  id: Type.Integer(),
  path: Type.String({ description: 'Relative to TEMPLATES_DIR, with / separators: the identity.' }),
  name: Type.String({ description: 'name or title from the file, else the file name without extension.' }),
  format: Type.Enum(['json', 'yaml', 'markdown']),
  metadata: { ...JsonObject, description: 'Front matter, or the parsed document without its body field.' },
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Of the file as read.' }),
  createdAt: Timestamp,
  updatedAt: { ...Timestamp, description: 'Last content change (or forced sync).' },
  syncedAt: { ...Timestamp, description: 'The sync that last wrote the row.' },
  embedding: Nullable(Embedding),
}

export const TemplateSummary = Type.Object(fields, { $id: 'TemplateSummary' })

export const Template = Type.Object(
  {
    ...fields,
    body: Type.String({
      description: 'Markdown after the front matter; body/content/template field; or the file.',
    }),
  },
  { $id: 'Template' },
)

export const SearchHit = Type.Object({
  id: Type.Integer(),
  path: Type.String(),
  name: Type.String(),
  format: Type.String(),
  score: Type.Number({ description: 'Cosine similarity to the query, -1 to 1.' }),
  stale: Type.Boolean({ description: 'Scored on an embedding of an older version of the template.' }),
})

export const TemplateRef = Type.Ref('Template')
export const TemplateSummaryRef = Type.Ref('TemplateSummary')

export type TemplateSummary = Static<typeof TemplateSummary>
export type Template = Static<typeof Template>
export type SearchHit = Static<typeof SearchHit>
export type EmbeddingInfo = Static<typeof Embedding>
