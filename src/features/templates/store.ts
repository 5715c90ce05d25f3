// Templates as the API shows them (list, one, search by similarity) and the embedding rows
// template-embed reads and writes. No HTTP here: routes and jobs both use these functions.
// Vectors go in pgvector's column when the database has it (src/db/vector.ts), else in real[].
import type { Sql } from 'postgres'
import { vectorSchema } from '../../db/vector.js'
import { decodeCursor, type Page, toPage } from '../../lib/pagination.js'
import type { SearchHit, Template, TemplateSummary } from './schemas.js'

interface TemplateRow {
  id: string
  path: string
  name: string
  format: TemplateSummary['format']
  metadata: TemplateSummary['metadata']
  body?: string
  sha256: string
  createdAt: Date
  updatedAt: Date
  syncedAt: Date
  model: string | null
  dimensions: number | null
  embeddedAt: Date | null
  contentSha256: string | null
  inArray: boolean | null
}

function toTemplate(row: TemplateRow): TemplateSummary & { body?: string } {
  return {
    id: Number(row.id),
    path: row.path,
    name: row.name,
    format: row.format,
    metadata: row.metadata,
    ...(row.body === undefined ? {} : { body: row.body }),
    sha256: row.sha256,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    syncedAt: row.syncedAt.toISOString(),
    embedding:
      row.model === null || row.embeddedAt === null
        ? null
        : {
            model: row.model,
            dimensions: Number(row.dimensions),
            embeddedAt: row.embeddedAt.toISOString(),
            stale: row.contentSha256 !== row.sha256,
            storage: row.inArray ? 'real[]' : 'vector',
          },
  }
}

export interface ToEmbed {
  id: number
  name: string
  body: string
  sha256: string
}

/**
 * pgvector's schema per connection pool, once its column exists (it is never removed). Until then
 * it is looked up on every use: another instance may enable pgvector at any time.
 */
const schemas = new WeakMap<Sql, string>()
async function pgvectorSchema(sql: Sql): Promise<string | null> {
  const known = schemas.get(sql)
  if (known) return known
  const schema = await vectorSchema(sql)
  if (schema) schemas.set(sql, schema)
  return schema
}

export function createTemplatesService(sql: Sql) {
  const columns = sql`t.id, t.path, t.name, t.format, t.metadata, t.sha256, t.created_at, t.updated_at,
    t.synced_at, e.model, e.dimensions, e.embedded_at, e.content_sha256, e.embedding is not null as in_array`
  return {
    /** By id, keyset-paginated (ids grow as files appear, so new templates come last). */
    async list(limit: number, cursor?: string): Promise<Page<TemplateSummary>> {
      const after = cursor ? decodeCursor(cursor) : null
      const rows = await sql<TemplateRow[]>`
        select ${columns} from templates t left join template_embeddings e on e.template_id = t.id
        where ${after === null ? sql`true` : sql`t.id > ${after}`}
        order by t.id limit ${limit + 1}`
      return toPage(rows.map(toTemplate), limit)
    },

    async get(id: number): Promise<Template | null> {
      const [row] = await sql<TemplateRow[]>`
        select ${columns}, t.body from templates t left join template_embeddings e on e.template_id = t.id
        where t.id = ${id}`
      return row ? (toTemplate(row) as Template) : null
    },

    /** Templates whose vector for this model is missing or stale; all of them when `all`. */
    async toEmbed(model: string, all: boolean): Promise<{ items: ToEmbed[]; total: number }> {
      const rows = await sql<Array<ToEmbed & { id: string }>>`
        select t.id, t.name, t.body, t.sha256 from templates t
        left join template_embeddings e on e.template_id = t.id
        where ${all ? sql`true` : sql`e.template_id is null or e.model <> ${model} or e.content_sha256 <> t.sha256`}
        order by t.id`
      const [count] = await sql<{ n: number }[]>`select count(*)::int as n from templates`
      return { items: rows.map((r) => ({ ...r, id: Number(r.id) })), total: count?.n ?? 0 }
    },

    /** One vector per template (a new model replaces the old one); skips templates deleted since. */
    async storeEmbeddings(model: string, items: Array<{ template: ToEmbed; vector: number[] }>) {
      const schema = await pgvectorSchema(sql)
      for (const { template, vector } of items) {
        const [array, pgvector] = schema
          ? [null, sql`${vector}::real[]::${sql(schema)}.vector`]
          : [vector, null]
        await sql`
          insert into template_embeddings (template_id, model, dimensions, content_sha256, embedding
                                           ${schema ? sql`, embedding_vector` : sql``})
          select id, ${model}, ${vector.length}, ${template.sha256}, ${array}::real[] ${schema ? sql`, ${pgvector}` : sql``}
          from templates where id = ${template.id}
          on conflict (template_id) do update
          set model = excluded.model, dimensions = excluded.dimensions,
              content_sha256 = excluded.content_sha256, embedding = excluded.embedding,
              ${schema ? sql`embedding_vector = excluded.embedding_vector,` : sql``}
              embedded_at = now()`
      }
    },

    /**
     * Cosine similarity to the query vector, best first: pgvector's cosine distance for vector rows,
     * the dot product for real[] rows (both unit length). A zero vector scores 0, not NaN.
     */
    async search(model: string, query: number[], limit: number): Promise<SearchHit[]> {
      const schema = await pgvectorSchema(sql)
      const dot = sql`(select coalesce(sum(a * b), 0) from unnest(e.embedding, ${query}::real[]) as v(a, b))::float8`
      const score = schema
        ? sql`case when e.embedding is not null then ${dot} else coalesce(nullif(
            1 - (e.embedding_vector operator(${sql(schema)}.<=>) ${query}::real[]::${sql(schema)}.vector),
            'NaN'), 0) end`
        : dot
      const rows = await sql<Array<Omit<SearchHit, 'id'> & { id: string }>>`
        select t.id, t.path, t.name, t.format, e.content_sha256 <> t.sha256 as stale, ${score} as score
        from template_embeddings e join templates t on t.id = e.template_id
        where e.model = ${model} and e.dimensions = ${query.length}
        order by score desc, t.id limit ${limit}`
      return rows.map((r) => ({ ...r, id: Number(r.id), score: Math.round(r.score * 1e6) / 1e6 }))
    },
  }
}

export type TemplatesService = ReturnType<typeof createTemplatesService>
