// Restore check: is the file intact (size and sha256 as recorded), does it restore with the standard
// client (psql; pg_restore renders custom archives) into a scratch database that is always dropped
// afterwards, and does that database hold the tables and row counts the dump itself declares? The
// file is the local one when it is on this host, else the off-site copy; an encrypted one is
// decrypted with BACKUP_AGE_IDENTITY_FILE, and without it only its size and sha256 can be checked
// (said so in the result). The restore runs as a role without rights in a database it owns
// (sandbox.ts): a dump cannot act as Steward's role. A globals file is not restored: roles are
// server-wide, so restoring them here would change this server.
import type { Sql } from 'postgres'
import type { Config } from '../../../config.js'
import type { RunLogger } from '../../../engine/job.js'
import { NotFound } from '../../../lib/errors.js'
import { PathEscape } from '../files.js'
import { loadIdentities } from '../keys.js'
import type { RemoteStore } from '../offsite/remote-store.js'
import type { StoredBackup, VerifyResult } from '../schemas.js'
import { BackupError, connectionEnv, parseDatabaseUrl, type Tool } from '../tools.js'
import { expectedContents, locateRestoreTools, restoreScript } from './client.js'
import { compareContents, countTables } from './contents.js'
import { hashFile, withPlaintext, withStoredFile } from './fetch.js'
import { type Sandbox, VerifyUnavailable, withSandbox } from './sandbox.js'
import { scriptFilter } from './script-filter.js'

export interface VerifyDeps {
  sql: Sql
  config: Config
  signal: AbortSignal
  remote: RemoteStore | null
  /** remote: check the off-site copy even when the local file is there. */
  source?: 'local' | 'remote'
  /** Told each step (a drill's run log); nothing is said without it. */
  log?: RunLogger
}

interface Tools {
  psql: Tool
  pgRestore: Tool
}

async function locateTools(deps: VerifyDeps): Promise<Tools> {
  try {
    // A drill restores custom archives as well as scripts: pg_restore is always wanted.
    const { psql, pgRestore } = await locateRestoreTools(deps.sql, deps.config, 'custom')
    return { psql, pgRestore: pgRestore as Tool }
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

/** Loads the file into the sandbox as its role; a restore that fails is the backup's verdict. */
async function restore(backup: StoredBackup, file: string, tools: Tools, sandbox: Sandbox, deps: VerifyDeps) {
  const env = {
    ...connectionEnv(parseDatabaseUrl(deps.config.databaseUrl as string), sandbox.database),
    PGUSER: sandbox.user,
    PGPASSWORD: sandbox.password,
    PGAPPNAME: 'steward-verify',
  }
  try {
    await restoreScript(backup.format, file, tools, env, deps.signal, scriptFilter(sandbox.createExtension))
  } catch (err) {
    if (err instanceof BackupError && err.code === 'exit_code')
      throw new BackupError('restore_failed', err.message)
    throw err
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
    const place = { ...deps, backupDir, host: deps.config.backupHost }
    return await withStoredFile(backup, place, async (stored, source) => {
      const actual = await hashFile(stored, deps.signal)
      const checksum = actual.sha256 === backup.sha256 && actual.bytes === backup.bytes ? 'ok' : 'mismatch'
      deps.log?.info('file read', { backupId: backup.id, source, bytes: actual.bytes, checksum })
      if (checksum === 'mismatch') {
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
        (plain) => {
          if (backup.encrypted) deps.log?.info('file decrypted', { backupId: backup.id })
          return backup.scope === 'globals'
            ? Promise.resolve(
                done({
                  ok: true,
                  checksum: 'ok',
                  source,
                  restoreSkipped:
                    'roles are server-wide, so they are not restored here: size, sha256 and decryption only',
                }),
              )
            : restoreCheck(deps, backup, plain, source, done)
        },
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
    deps.log?.info('dump read', { backupId: backup.id, tables: expected.size })
    const sandboxDeps = {
      sql: deps.sql,
      databaseUrl: deps.config.databaseUrl as string,
      sourceDatabase: backup.database,
      backupId: backup.id,
    }
    return await withSandbox(sandboxDeps, async (sandbox) => {
      const started = Date.now()
      deps.log?.info('restoring into a scratch database', {
        backupId: backup.id,
        scratch: sandbox.database,
        with: restoredWith,
      })
      await restore(backup, file, tools, sandbox, deps)
      deps.log?.info('restored', { backupId: backup.id, seconds: (Date.now() - started) / 1000 })
      // Counted in the role's session: whatever the dump left there runs with the role's rights.
      const restored = await countTables(sandbox.sql)
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
