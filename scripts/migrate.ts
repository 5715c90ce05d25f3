// `npm run migrate`: applies pending migrations to DATABASE_URL (or the embedded database under
// DATA_DIR) and exits. The server also migrates at start-up; this is for deploy pipelines.
import postgres from 'postgres'
import { loadConfig } from '../src/config.js'
import { useEmbeddedPostgres } from '../src/db/embedded.js'
import { migrate } from '../src/db/migrate.js'

const config = loadConfig()
const embedded = config.databaseUrl ? undefined : await useEmbeddedPostgres(config.dataDir)
const sql = postgres(config.databaseUrl ?? (embedded?.url as string), { max: 1, onnotice: () => {} })
try {
  const applied = await migrate(sql)
  process.stdout.write(
    applied.length ? `applied migrations ${applied.join(', ')}\n` : 'database is up to date\n',
  )
} finally {
  await sql.end()
  await embedded?.stop()
}
