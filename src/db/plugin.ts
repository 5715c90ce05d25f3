// The database connection (postgres.js), migrated before anything else uses it.
import fp from 'fastify-plugin'
import postgres, { type Sql } from 'postgres'
import { COLUMN_CASE } from './embedded.js'
import { migrate } from './migrate.js'
import { enableVectors, type VectorSetting } from './vector.js'

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql
  }
}

export interface DbOptions {
  databaseUrl: string
  /** Whether template embeddings may use pgvector (PGVECTOR). */
  pgvector: VectorSetting
}

export default fp<DbOptions>(
  async (app, { databaseUrl, pgvector }) => {
    const sql = postgres(databaseUrl, {
      max: 10,
      transform: COLUMN_CASE,
      onnotice: () => {},
      // Fail fast rather than hang a request when the server is down; the pool reconnects by itself.
      connect_timeout: 10,
      idle_timeout: 60,
      connection: { application_name: 'steward' },
    })
    const applied = await migrate(sql)
    if (applied.length > 0) app.log.info({ applied }, 'migrations applied')
    await enableVectors(sql, pgvector, app.log)
    app.decorate('sql', sql)
    app.addHook('onClose', async () => {
      await sql.end({ timeout: 5 })
    })
  },
  { name: 'db' },
)
