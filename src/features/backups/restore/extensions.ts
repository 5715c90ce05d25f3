// Extensions in a restore check's scratch database. The restore role may create trusted extensions
// itself; the others (pgvector, pg_stat_statements …) need a superuser, so Steward's role creates
// them first, just before the dump's own CREATE EXTENSION IF NOT EXISTS runs (which then finds them).
// Only in schema public, which exists before the dump runs, and only extensions the backed-up
// database or Steward's own has installed: what the server's administrator chose there, never
// whatever a dump names.
import postgres, { type Sql } from 'postgres'
import { BackupError } from '../tools.js'

export interface ExtensionDeps {
  /** Steward's own connection. */
  sql: Sql
  databaseUrl: string
  /** The database the backup was taken of, if it is on this server. */
  sourceDatabase: string
}

/** Names of the extensions installed in `database` (none when it cannot be reached). */
async function extensionsOf(databaseUrl: string, database: string): Promise<string[]> {
  const sql = postgres(databaseUrl, { database, max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    const rows = await sql<{ name: string }[]>`select extname::text as name from pg_catalog.pg_extension`
    return rows.map((r) => r.name)
  } catch {
    return []
  } finally {
    await sql.end({ timeout: 5 })
  }
}

export async function allowedExtensions(deps: ExtensionDeps): Promise<Set<string>> {
  const own = await deps.sql<{ name: string }[]>`select extname::text as name from pg_catalog.pg_extension`
  const source = await extensionsOf(deps.databaseUrl, deps.sourceDatabase)
  return new Set([...own.map((r) => r.name), ...source].filter((name) => name !== 'plpgsql'))
}

/** The `createExtension` of a sandbox: Steward's role creates allowed extensions in public first. */
export function extensionCreator(deps: ExtensionDeps, database: string, allowed: Set<string>) {
  return async (name: string, schema: string) => {
    if (schema !== 'public' || !allowed.has(name)) return // the role tries itself: fine when trusted
    const admin = postgres(deps.databaseUrl, { database, max: 1, onnotice: () => {}, connect_timeout: 10 })
    try {
      await admin.begin(async (tx) => {
        // The dump's transaction may hold a lock it needs (a hostile dump would): give up, not hang.
        await tx`set local lock_timeout = '10s'`
        await tx`create extension if not exists ${tx(name)} with schema public`
      })
    } catch (err) {
      throw new BackupError(
        'restore_failed',
        `could not create extension "${name}": ${(err as Error).message}`,
      )
    } finally {
      await admin.end({ timeout: 5 })
    }
  }
}
