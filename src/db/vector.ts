// pgvector, when the server has it: template embeddings go in a `vector` column and search ranks them
// with its cosine distance operator. Without it they stay in real[] (migration 0004) and search
// computes the dot product in SQL; both kinds of rows are searched alike, so switching is seamless.
// Enabled at start-up, after the migrations and under their lock. Creating an extension needs a
// superuser (pgvector is not a trusted extension): a role that may not is told so and carries on.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql, TransactionSql } from 'postgres'
import { LOCK_KEY } from './migrate.js'

export type VectorSetting = 'auto' | 'off'

/** The schema pgvector's type lives in, once template_embeddings has its vector column; else null. */
export async function vectorSchema(sql: Sql | TransactionSql): Promise<string | null> {
  const [row] = await sql<{ schema: string }[]>`
    select n.nspname as schema
    from pg_attribute a join pg_type ty on ty.oid = a.atttypid join pg_namespace n on n.oid = ty.typnamespace
    where a.attrelid = 'template_embeddings'::regclass and a.attname = 'embedding_vector' and not a.attisdropped`
  return row?.schema ?? null
}

/**
 * Makes template embeddings use pgvector when `setting` is 'auto' and the server offers it: creates
 * the extension, adds the column and moves existing real[] vectors into it. Idempotent. Returns the
 * extension's schema, or null when embeddings stay in real[].
 */
export async function enableVectors(sql: Sql, setting: VectorSetting, log: FastifyBaseLogger) {
  const existing = await vectorSchema(sql)
  if (existing) {
    // Written by an instance that started before pgvector was enabled.
    await moveArrays(sql, existing, log)
    return existing
  }
  if (setting === 'off') return null
  const [offered] = await sql`select 1 from pg_available_extensions where name = 'vector'`
  if (!offered) {
    log.info('pgvector is not installed on the database server; template embeddings are stored as real[]')
    return null
  }
  try {
    return await sql.begin(async (tx) => {
      // The migrations' lock: instances starting together take turns.
      await tx`select pg_advisory_xact_lock(${LOCK_KEY})`
      // Another instance starting at the same time may have done it all while we waited.
      const done = await vectorSchema(tx)
      if (done) return done
      await tx`create extension if not exists vector`
      const [{ name } = { name: 'public' }] = await tx<{ name: string }[]>`
        select n.nspname as name from pg_extension e join pg_namespace n on n.oid = e.extnamespace
        where e.extname = 'vector'`
      const schema = tx(name)
      await tx`alter table template_embeddings add column if not exists embedding_vector ${schema}.vector`
      await tx`alter table template_embeddings alter column embedding drop not null`
      await tx`alter table template_embeddings drop constraint if exists template_embeddings_vector_check`
      await tx`
        alter table template_embeddings add constraint template_embeddings_vector_check check (
          (embedding is null) <> (embedding_vector is null)
          and (embedding_vector is null or ${schema}.vector_dims(embedding_vector) = dimensions))`
      log.info('pgvector enabled: template embeddings are stored as vector')
      await moveArrays(tx, name, log)
      return name
    })
  } catch (err) {
    // 42501: not allowed to create the extension; anything else is worth an error, not a failed start.
    const denied = (err as { code?: string }).code === '42501'
    log[denied ? 'info' : 'error'](
      { err },
      denied
        ? 'pgvector is installed but this role may not create the extension (ask a superuser to run `create extension vector`); template embeddings are stored as real[]'
        : 'could not enable pgvector; template embeddings are stored as real[]',
    )
    return null
  }
}

/** Moves vectors stored as real[] into the vector column. */
async function moveArrays(sql: Sql | TransactionSql, schema: string, log: FastifyBaseLogger): Promise<void> {
  const moved = await sql`
    update template_embeddings set embedding_vector = embedding::${sql(schema)}.vector, embedding = null
    where embedding is not null`
  if (moved.count > 0) log.info({ moved: moved.count }, 'template embeddings moved from real[] to vector')
}
