// Forward-only migrations: migrations/NNNN_name.sql applied in order, each in its own transaction
// with a ledger row, under an advisory lock so instances starting together cannot collide.
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Sql } from 'postgres'
import { packagePath } from '../lib/package-root.js'

export const MIGRATIONS_DIR = packagePath('migrations')

// Any constant shared by every Steward process; "steward" in ASCII.
export const LOCK_KEY = 0x73746577

export interface Migration {
  version: number
  name: string
  file: string
}

export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  return files.map((file) => {
    const match = /^(\d{4})_([\w-]+)\.sql$/.exec(file)
    if (!match) throw new Error(`migration file ${file} must be named NNNN_name.sql`)
    return { version: Number(match[1]), name: match[2] as string, file: path.join(dir, file) }
  })
}

/** Applies every migration not yet in the ledger; returns the versions it applied. */
export async function migrate(sql: Sql, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await listMigrations(dir)
  await sql`
    create table if not exists steward_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`.catch(ignoreConcurrentCreate)
  // Most starts have nothing to apply: one read instead of a locked transaction per migration.
  const ledger = await sql<{ version: number }[]>`select version from steward_migrations`
  const known = new Set(ledger.map((row) => row.version))
  const applied: number[] = []
  for (const migration of migrations) {
    if (known.has(migration.version)) continue
    const text = await fs.readFile(migration.file, 'utf8')
    const done = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${LOCK_KEY})`
      // Another instance may have applied it while this one waited for the lock.
      const [seen] = await tx`select 1 from steward_migrations where version = ${migration.version}`
      if (seen) return false
      await tx.unsafe(text)
      await tx`insert into steward_migrations (version, name) values (${migration.version}, ${migration.name})`
      return true
    })
    if (done) applied.push(migration.version)
  }
  return applied
}

// Two processes may race on `create table if not exists`; the loser sees a unique violation.
function ignoreConcurrentCreate(err: { code?: string }): void {
  if (err.code !== '23505' && err.code !== '42P07') throw err
}
