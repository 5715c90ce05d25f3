// `steward migrate`, `steward psql` and `steward db-url`: Steward's database from a shell. The
// embedded server's port changes at every start and its password lives in DATA_DIR/pg.password;
// these commands find both, so nobody has to.
import { spawn } from 'node:child_process'
import type { Sql } from 'postgres'
import { migrate } from './db/migrate.js'
import { connectionEnv, locateTool, parseDatabaseUrl, serverVersion } from './features/backups/tools.js'

export const MIGRATE_USAGE = `usage: steward migrate

Applies Steward's pending migrations to DATABASE_URL (or the embedded database of DATA_DIR) and
exits; the server also migrates at start-up. For deploy pipelines.`

export const PSQL_USAGE = `usage: steward psql [psql options…]

Runs psql on Steward's database: DATABASE_URL, or the embedded database of DATA_DIR (the running
server's, or started for the session). Options go to psql unchanged, e.g.
  npx steward psql -c 'select job, state, queued_at from job_runs order by id desc limit 5'
The password travels in PGPASSWORD, never on the command line.`

export const DB_URL_USAGE = `usage: steward db-url

Prints the connection URL of Steward's database (with its password), for other tools:
  pg_dump "$(npx steward db-url)" > steward.sql
With the embedded database, the server must be running (its port changes at every start).`

export async function migrateCommand(sql: Sql, out: (text: string) => void): Promise<number> {
  const applied = await migrate(sql)
  out(applied.length > 0 ? `applied migrations ${applied.join(', ')}` : 'the database is up to date')
  return 0
}

/** psql with the terminal handed over; resolves to psql's exit status. */
export async function psqlCommand(
  sql: Sql,
  url: string,
  argv: string[],
  options: { binDir?: string; signal: AbortSignal },
): Promise<number> {
  const psql = await locateTool('psql', await serverVersion(sql), { binDir: options.binDir })
  const connection = parseDatabaseUrl(url)
  const env = {
    // The user's own environment (PAGER, TERM, ~/.psqlrc through HOME) with the connection's PG*.
    ...process.env,
    ...connectionEnv(connection, connection.database ?? connection.user ?? 'postgres'),
    PGAPPNAME: 'steward-psql',
  }
  const child = spawn(psql.path, argv, { stdio: 'inherit', env })
  // Ctrl-C belongs to psql (it cancels the query); the command only ends when psql does.
  const ignore = () => {}
  options.signal.addEventListener('abort', ignore)
  return await new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  }).finally(() => options.signal.removeEventListener('abort', ignore))
}
