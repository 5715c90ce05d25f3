// Restore check: is the file intact (size and sha256 as recorded), does it restore with the standard
// client (psql, or pg_restore for custom archives) into a scratch database that is always dropped
// afterwards, and does that database hold the tables and row counts the dump itself declares? The
// file is the local one, else the off-site copy; an encrypted one is decrypted with
// BACKUP_AGE_IDENTITY_FILE, and without it only its size and sha256 can be checked (said so in the
// result). A globals file is not restored: roles are server-wide, so restoring them here would
// change this server.
import { randomBytes } from 'node:crypto'
import postgres, { type Sql } from 'postgres'
import type { Config } from '../../../config.js'
import { NotFound } from '../../../lib/errors.js'
import { PathEscape } from '../files.js'
import { loadIdentities } from '../keys.js'
import type { RemoteStore } from '../offsite/remote-store.js'
import type { StoredBackup, VerifyResult } from '../schemas.js'
import {
  BackupError,
  connectionEnv,
  locateTool,
  parseDatabaseUrl,
  serverVersion,
  type Tool,
} from '../tools.js'
import { expectedContents, restoreWithClient } from './client.js'
import { compareContents, countTables, type TableCounts } from './contents.js'
import { hashFile, withPlaintext, withStoredFile } from './fetch.js'

export interface VerifyDeps {
  sql: Sql
  config: Config
  signal: AbortSignal
  remote: RemoteStore | null
  /** remote: check the off-site copy even when the local file is there. */
  source?: 'local' | 'remote'
}

/** The check could not be carried out here (no client tools, no right to create a database). */
export class VerifyUnavailable extends BackupError {}

interface Tools {
  psql: Tool
  pgRestore: Tool
}

async function locateTools(deps: VerifyDeps): Promise<Tools> {
  try {
    const server = await serverVersion(deps.sql)
    const options = { binDir: deps.config.backupPgBinDir }
    return {
      psql: await locateTool('psql', server, options),
      pgRestore: await locateTool('pg_restore', server, options),
    }
  } catch (err) {
    if (err instanceof BackupError) throw new VerifyUnavailable(err.code, err.message)
    throw err
  }
}

/** What the dump declares (client.ts), a file that cannot be read being the backup's fault. */
async function expectedIn(backup: StoredBackup, file: string, tools: Tools, deps: VerifyDeps) {
  return await expectedContents(backup.format, file, tools, deps.signal).catch((err: Error) => {
    if (deps.signal.aborted || err instanceof BackupError) throw err
    throw new BackupError('unreadable', `could not read ${backup.file}: ${err.message}`)
  })
}

async function restore(
  backup: StoredBackup,
  file: string,
  tools: Tools,
  env: NodeJS.ProcessEnv,
  deps: VerifyDeps,
) {
  try {
    // A scratch database checks contents: owners and grants are left out (their roles may not exist).
    await restoreWithClient(backup.format, file, tools, env, deps.signal, 'skip')
  } catch (err) {
    if (err instanceof BackupError && err.code === 'exit_code')
      throw new BackupError('restore_failed', err.message)
    throw err
  }
}

async function countIn(databaseUrl: string, database: string): Promise<TableCounts> {
  const scratch = postgres(databaseUrl, { database, max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    return await countTables(scratch)
  } finally {
    await scratch.end({ timeout: 5 })
  }
}

export const SCRATCH_PREFIX = 'steward_verify_'

/** steward_verify_<unix seconds>_<backup id>_<random>: the age lets a later start-up drop leftovers. */
export function scratchName(id: number, now = new Date()): string {
  return `${SCRATCH_PREFIX}${Math.floor(now.getTime() / 1000)}_${id}_${randomBytes(4).toString('hex')}`
}

export function scratchCreatedAt(name: string): Date | null {
  const match = /^steward_verify_(\d+)_\d+_[0-9a-f]+$/.exec(name)
  return match ? new Date(Number(match[1]) * 1000) : null
}

async function withScratchDatabase<T>(
  deps: VerifyDeps,
  id: number,
  work: (name: string) => Promise<T>,
): Promise<T> {
  const { sql } = deps
  const name = scratchName(id)
  try {
    // template0: a restore must start from an empty database, whatever was added to template1.
    await sql`create database ${sql(name)} template template0`
  } catch (err) {
    throw new VerifyUnavailable(
      'scratch_database',
      `cannot create a scratch database: ${(err as Error).message}`,
    )
  }
  try {
    return await work(name)
  } finally {
    await sql`drop database if exists ${sql(name)} with (force)`
  }
}

export async function verifyBackup(deps: VerifyDeps, backup: StoredBackup): Promise<VerifyResult> {
  const started = Date.now()
  const done = (result: Omit<VerifyResult, 'durationMs'>): VerifyResult => ({
    ...result,
    durationMs: Date.now() - started,
  })
  const { backupDir } = deps.config
  try {
    return await withStoredFile(backup, { ...deps, backupDir }, async (stored, source) => {
      const actual = await hashFile(stored, deps.signal)
      if (actual.sha256 !== backup.sha256 || actual.bytes !== backup.bytes) {
        const message = `file has ${actual.bytes} bytes, sha256 ${actual.sha256}; recorded ${backup.bytes} bytes, sha256 ${backup.sha256}`
        return done({
          ok: false,
          checksum: 'mismatch',
          source,
          error: { code: 'checksum_mismatch', message },
        })
      }
      const identities = backup.encrypted ? await loadIdentities(deps.config) : []
      if (identities === null) {
        const restoreSkipped =
          'the file is encrypted and BACKUP_AGE_IDENTITY_FILE is not set: size and sha256 only'
        return done({ ok: true, checksum: 'ok', source, restoreSkipped })
      }
      return await withPlaintext(
        stored,
        backup.encrypted,
        identities,
        { backupDir, signal: deps.signal },
        (plain) =>
          backup.scope === 'globals'
            ? Promise.resolve(
                done({
                  ok: true,
                  checksum: 'ok',
                  source,
                  restoreSkipped:
                    'roles are server-wide, so they are not restored here: size, sha256 and decryption only',
                }),
              )
            : restoreCheck(deps, backup, plain, source, done),
      ).catch((err: Error) => {
        if (deps.signal.aborted || !/age decryption failed/.test(err.message)) throw err
        return done({
          ok: false,
          checksum: 'ok',
          source,
          error: { code: 'decrypt_failed', message: err.message },
        })
      })
    })
  } catch (err) {
    if (
      err instanceof NotFound ||
      (err as NodeJS.ErrnoException).code === 'ENOENT' ||
      err instanceof PathEscape
    ) {
      const error = { code: 'file_missing', message: (err as Error).message }
      return done({ ok: false, checksum: 'missing', error })
    }
    throw err
  }
}

async function restoreCheck(
  deps: VerifyDeps,
  backup: StoredBackup,
  file: string,
  source: 'local' | 'remote',
  done: (result: Omit<VerifyResult, 'durationMs'>) => VerifyResult,
): Promise<VerifyResult> {
  const tools = await locateTools(deps)
  const restoredWith = backup.format === 'custom' ? 'pg_restore' : 'psql'
  try {
    const expected = await expectedIn(backup, file, tools, deps)
    const conn = parseDatabaseUrl(deps.config.databaseUrl as string)
    return await withScratchDatabase(deps, backup.id, async (scratch) => {
      await restore(backup, file, tools, connectionEnv(conn, scratch), deps)
      const restored = await countIn(deps.config.databaseUrl as string, scratch)
      return done({ checksum: 'ok', source, restoredWith, ...compareContents(expected, restored) })
    })
  } catch (err) {
    if (deps.signal.aborted || err instanceof VerifyUnavailable || !(err instanceof BackupError)) throw err
    return done({
      ok: false,
      checksum: 'ok',
      source,
      restoredWith,
      error: { code: err.code, message: err.message },
    })
  }
}
