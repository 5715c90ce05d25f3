import { constants } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Sql } from 'postgres'
import type { Config } from '../../../config.js'
import { isLocalHere, resolveInside } from '../files.js'
import { remoteStoreFor } from '../offsite/offsite.js'
import type { RemoteStore } from '../offsite/remote-store.js'
import type { StoredBackup } from '../schemas.js'
import { type BackupStore, createBackupStore } from '../store.js'
import {
  type BucketFile,
  globalsBeside,
  headFile,
  locateLatest,
  locateObject,
  type ProvableFile,
} from './bucket.js'
import { CommandError, type RestoreFile, type RestoreFrom } from './command-line.js'
import { withDownload, withStoredFile } from './fetch.js'

export interface SourceDeps {
  /** A connection to the server; for a backup id, to Steward's own database (the backups table). */
  sql: Sql
  config: Config
  signal: AbortSignal
  say: (line: string) => void
}

type Work<T> = (file: string, source: 'local' | 'remote') => Promise<T>

export interface RestoreSource {
  main: RestoreFile
  /** The set's globals.sql, when --globals asked for it. */
  globals: RestoreFile | null
  /** Runs `work` on a local path holding the file's stored bytes (not yet checked). */
  withStored<T>(file: RestoreFile, work: Work<T>): Promise<T>
  /** Where decrypted copies go (into its .restore-tmp). */
  scratchDir: string
  close(): Promise<void>
}

export async function openSource(
  deps: SourceDeps,
  from: RestoreFrom,
  globals: boolean,
): Promise<RestoreSource> {
  return 'id' in from ? await tableSource(deps, from.id, globals) : await bucketSource(deps, from, globals)
}

async function tableSource(deps: SourceDeps, id: number, withGlobals: boolean): Promise<RestoreSource> {
  const { config, signal, say } = deps
  const store = createBackupStore(deps.sql, config)
  const backup = await store.get(id)
  if (!backup) throw new CommandError(`there is no backup ${id} (GET /backups lists them)`)
  if (backup.scope !== 'database')
    throw new CommandError(
      `backup ${backup.id} is the roles file (globals) of set ${backup.setDir}, not a database: ` +
        'give the id of a database file of the set, with --globals to apply this one first',
      2,
    )
  const globals = withGlobals ? await globalsOf(deps.sql, store, backup) : null
  const remote = remoteStoreFor(config)
  const rows = new Map<RestoreFile, StoredBackup>()
  const described = (row: StoredBackup) => {
    const file = fromRow(row, remote)
    rows.set(file, row)
    return file
  }
  return {
    main: described(backup),
    globals: globals && described(globals),
    scratchDir: config.backupDir,
    async withStored(file, work) {
      const row = rows.get(file) as StoredBackup
      const copy = await whichCopy(row, config)
      if (copy === 'remote') say(`${row.file}: no local copy here, reading the off-site one`)
      const options = { backupDir: config.backupDir, host: config.backupHost, remote, signal, source: copy }
      return await withStoredFile(row, options, work)
    },
    close: async () => {},
  }
}

function fromRow(row: StoredBackup, remote: RemoteStore | null): RestoreFile {
  const { id, scope, database, kind, createdAt, setDir, file, format, bytes, sha256, encrypted } = row
  const key = row.remote?.key
  const object = key && remote ? `s3://${remote.bucket}/${key}` : (key ?? null)
  return { id, scope, database, kind, createdAt, setDir, file, format, bytes, sha256, encrypted, object }
}

/** The globals file of the same set; an error when the set has none. */
async function globalsOf(sql: Sql, store: BackupStore, backup: StoredBackup): Promise<StoredBackup> {
  const [row] = await sql<{ id: string }[]>`
    select id from backups where set_dir = ${backup.setDir} and scope = 'globals' order by id limit 1`
  const globals = row ? await store.get(Number(row.id)) : null
  if (!globals) throw new CommandError(`set ${backup.setDir} has no globals file: leave out --globals`)
  return globals
}

/**
 * 'remote' when the row says local but the file is gone (a new machine) or on another host, and an
 * uploaded copy exists; else 'local' (a file on another host then fails, naming the host).
 */
async function whichCopy(backup: StoredBackup, config: Config): Promise<'local' | 'remote'> {
  if (!backup.local) return 'remote'
  if (backup.remote?.state !== 'uploaded') return 'local'
  if (!isLocalHere(backup, config.backupHost)) return 'remote'
  return await resolveInside(config.backupDir, backup.file).then(
    () => 'local' as const,
    () => 'remote' as const,
  )
}

async function bucketSource(
  deps: SourceDeps,
  from: { object: string } | { latest: string },
  withGlobals: boolean,
): Promise<RestoreSource> {
  const { config, signal, say } = deps
  const { store, file } =
    'object' in from ? locateObject(from.object, config) : await locateLatest(from.latest, config)
  try {
    const main = await headFile(store, file)
    if (main.scope === 'globals')
      throw new CommandError(
        `${main.url} is the roles file (globals.sql) of its set, not a database: give a database ` +
          'file of the set, with --globals to apply this one first',
        2,
      )
    const globals = withGlobals ? await globalsBeside(store, main) : null
    if (withGlobals && !globals)
      throw new CommandError(`set ${setUrl(main)} has no globals.sql: leave out --globals`)
    const keys = new Map<RestoreFile, string>()
    const described = (object: ProvableFile) => {
      const file = fromObject(object)
      keys.set(file, object.key)
      return file
    }
    const scratch = await scratchDirFor(config.backupDir, say)
    return {
      main: described(main),
      globals: globals && described(globals),
      scratchDir: scratch.dir,
      withStored: (file, work) => downloaded(store, keys.get(file) as string, scratch.dir, signal, work),
      async close() {
        store.close()
        if (scratch.created) await fs.rm(scratch.dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    store.close()
    throw err
  }
}

const setUrl = (file: BucketFile) => file.url.slice(0, -file.name.length)

function fromObject(object: ProvableFile): RestoreFile {
  const { scope, database, kind, createdAt, setDir, file, format, bytes, sha256, encrypted } = object
  return {
    id: null,
    scope,
    database,
    kind,
    createdAt,
    setDir,
    file,
    format,
    bytes,
    sha256,
    encrypted,
    object: object.url,
  }
}

/** BACKUP_DIR when it is a writable directory; else a new one under the system's temporary directory. */
async function scratchDirFor(backupDir: string, say: (line: string) => void) {
  const usable = await writableDir(backupDir)
  if (usable) return { dir: backupDir, created: false }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-restore-'))
  say(`BACKUP_DIR (${backupDir}) is not a writable directory here: temporary copies go to ${dir}`)
  return { dir, created: true }
}

async function writableDir(dir: string): Promise<boolean> {
  try {
    if (!(await fs.stat(dir)).isDirectory()) return false
    await fs.access(dir, constants.W_OK | constants.X_OK)
    return true
  } catch {
    return false
  }
}

function downloaded<T>(
  store: RemoteStore,
  key: string,
  scratchDir: string,
  signal: AbortSignal,
  work: Work<T>,
) {
  return withDownload(store, key, scratchDir, signal, (file) => work(file, 'remote'))
}
