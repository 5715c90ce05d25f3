// The backups table and the local files it points at: list and read, record a finished set, the
// off-site copy's state, anomalies, restore-check results, and the removal of rows and files. A
// row exists only for a file that was fsynced and renamed into place, and lives while either copy
// does (the file in BACKUP_DIR, or the uploaded off-site copy). Files and rows are removed
// together, row first (see dropLocal). A row says which host's BACKUP_DIR holds its file (host,
// BACKUP_HOST); local files are read and removed only by that host, or by any host when the row
// predates hosts (null).
import fs from 'node:fs/promises'
import type { Sql, TransactionSql } from 'postgres'
import type { Config } from '../../config.js'
import type { JsonValue } from '../../lib/json.js'
import { allOf, decodeCursor, type Page, toPage } from '../../lib/pagination.js'
import { type BackupFormat, type BackupKind, removeSetDir, resolveInside } from './files.js'
import type { Anomaly, Backup, StoredBackup, VerifyResult } from './schemas.js'

export type BackupScope = Backup['scope']
type RemoteState = NonNullable<Backup['remote']>['state']

/** What a file of a set is, as the backup job wrote it. */
interface WrittenFile {
  kind: BackupKind
  scope: BackupScope
  database: string
  file: string
  setDir: string
  format: BackupFormat
  sha256: string
  encrypted: boolean
}

interface BackupRow extends WrittenFile {
  id: string
  bytes: string
  local: boolean
  host: string | null
  remoteState: RemoteState | null
  remoteKey: string | null
  remoteUploadedAt: Date | null
  remoteError: string | null
  anomaly: Anomaly | null
  runId: string | null
  createdAt: Date
  verifiedAt: Date | null
  verifyResult: VerifyResult | null
}

export interface NewBackup extends WrittenFile {
  bytes: number
  /** The off-site object key, when a remote is configured: the copy starts out pending. */
  remoteKey: string | null
}

export interface BackupFilter {
  kind?: BackupKind
  database?: string
}

/** One set as retention sees it. */
export interface SetSummary {
  setDir: string
  kind: BackupKind
  createdAt: Date
  local: boolean
  /** The host whose BACKUP_DIR holds the set (null: recorded before hosts were). */
  host: string | null
  /** Every file of the set has an uploaded off-site copy. */
  uploaded: boolean
  /** Some file of the set still waits for its upload (pending or failed). */
  awaitingUpload: boolean
  /** Every file of the set passed its last restore check. */
  verified: boolean
}

const COLUMNS = [
  'id',
  'kind',
  'scope',
  'database',
  'file',
  'set_dir',
  'format',
  'bytes',
  'sha256',
  'encrypted',
  'local',
  'host',
  'remote_state',
  'remote_key',
  'remote_uploaded_at',
  'remote_error',
  'anomaly',
  'run_id',
  'created_at',
  'verified_at',
  'verify_result',
]

const iso = (date: Date | null) => (date ? date.toISOString() : null)

function toStored(row: BackupRow): StoredBackup {
  return {
    id: Number(row.id),
    kind: row.kind,
    scope: row.scope,
    database: row.database,
    file: row.file,
    bytes: Number(row.bytes),
    sha256: row.sha256,
    encrypted: row.encrypted,
    local: row.local,
    host: row.host,
    remote:
      row.remoteState === null || row.remoteKey === null
        ? null
        : {
            state: row.remoteState,
            key: row.remoteKey,
            uploadedAt: iso(row.remoteUploadedAt),
            error: row.remoteError,
          },
    anomaly: row.anomaly,
    runId: row.runId === null ? null : Number(row.runId),
    createdAt: row.createdAt.toISOString(),
    verifiedAt: iso(row.verifiedAt),
    verifyResult: row.verifyResult,
    setDir: row.setDir,
    format: row.format,
  }
}

/** The API representation: the set directory and format stay internal (the file name says both). */
export function toBackup({ setDir: _setDir, format: _format, ...backup }: StoredBackup): Backup {
  return backup
}

export function createBackupStore(sql: Sql, config: Config) {
  const columns = sql(COLUMNS)

  async function unlinkInside(file: string): Promise<void> {
    try {
      await fs.rm(await resolveInside(config.backupDir, file), { force: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  /** Removes the local files of these rows, and each set directory once no local file of it is left. */
  async function removeFiles(removed: { file: string; setDir: string }[]): Promise<void> {
    const dirs = [...new Set(removed.map((r) => r.setDir))]
    const left = await sql<{ setDir: string }[]>`
      select distinct set_dir from backups where set_dir = any(${dirs}::text[]) and local`
    const remaining = new Set(left.map((r) => r.setDir))
    for (const row of removed) if (remaining.has(row.setDir)) await unlinkInside(row.file)
    for (const dir of dirs) if (!remaining.has(dir)) await removeSetDir(config.backupDir, dir)
  }

  /** Rows whose local file (if any) this host may touch: its own, and those recorded before hosts. */
  const here = (tx: Sql | TransactionSql) => tx`(host is null or host = ${config.backupHost})`

  /** Serialises changes to one kind's sets across instances (retention, deletes). */
  const lockKind = (tx: TransactionSql, kind: BackupKind) =>
    tx`select pg_advisory_xact_lock(hashtext('steward.backups'), hashtext(${kind}))`

  return {
    async get(id: number): Promise<StoredBackup | null> {
      const [row] = await sql<BackupRow[]>`select ${columns} from backups where id = ${id}`
      return row ? toStored(row) : null
    },

    /** Newest first, keyset-paginated on id. */
    async list(filter: BackupFilter, limit: number, cursor?: string): Promise<Page<Backup>> {
      const after = cursor ? decodeCursor(cursor) : null
      const where = allOf(sql, [
        filter.kind !== undefined && sql`kind = ${filter.kind}`,
        filter.database !== undefined && sql`database = ${filter.database}`,
        after !== null && sql`id < ${after}`,
      ])
      const rows = await sql<BackupRow[]>`
        select ${columns} from backups where ${where} order by id desc limit ${limit + 1}`
      return toPage(
        rows.map((row) => toBackup(toStored(row))),
        limit,
      )
    },

    /**
     * Records a finished set in one transaction: all of its files or none. The signal is checked
     * inside the transaction so a run cancelled meanwhile commits nothing.
     */
    async recordSet(files: NewBackup[], runId: string | null, signal?: AbortSignal): Promise<StoredBackup[]> {
      return await sql.begin(async (tx) => {
        const rows: BackupRow[] = []
        for (const f of files) {
          const [row] = await tx<BackupRow[]>`
            insert into backups (kind, scope, database, file, set_dir, format, bytes, sha256, encrypted,
                                 host, remote_state, remote_key, run_id)
            values (${f.kind}, ${f.scope}, ${f.database}, ${f.file}, ${f.setDir}, ${f.format}, ${f.bytes},
                    ${f.sha256}, ${f.encrypted}, ${config.backupHost},
                    ${f.remoteKey === null ? null : 'pending'}, ${f.remoteKey},
                    ${runId === null ? null : tx`(select id from job_runs where id = ${runId})`})
            returning ${columns}`
          rows.push(row as BackupRow)
        }
        signal?.throwIfAborted()
        return rows.map(toStored)
      })
    },

    /** Whether a set of this name is recorded (by any host). */
    async hasSet(setDir: string): Promise<boolean> {
      return (await sql`select 1 from backups where set_dir = ${setDir} limit 1`).length > 0
    },

    /** Every set, newest first, with what retention needs to know of it. */
    async sets(): Promise<SetSummary[]> {
      return await sql<SetSummary[]>`
        select set_dir, kind, host, min(created_at) as created_at, bool_or(local) as local,
               bool_and(remote_state is not distinct from 'uploaded') as uploaded,
               bool_or(remote_state in ('pending', 'failed')) as awaiting_upload,
               bool_and(coalesce(verify_result->>'ok' = 'true', false)) as verified
        from backups group by set_dir, kind, host order by max(id) desc`
    },

    /**
     * Removes the local copy of these sets: rows whose off-site copy is uploaded stay (local =
     * false), the others are deleted; then the files. Row first: a crash in between leaves a file
     * without a row (an orphan, reported by the sweep and never served), never a row that points at
     * nothing. Only files on this host: another host's rows are left for that host to remove.
     */
    async dropLocal(kind: BackupKind, target: { id: number } | { setDirs: string[] }): Promise<number> {
      const match = (tx: TransactionSql) =>
        'id' in target
          ? tx`id = ${target.id}`
          : tx`kind = ${kind} and set_dir = any(${target.setDirs}::text[])`
      const removed = await sql.begin(async (tx) => {
        await lockKind(tx, kind)
        const kept = await tx<{ file: string; setDir: string }[]>`
          update backups set local = false
          where ${match(tx)} and local and ${here(tx)} and remote_state = 'uploaded' returning file, set_dir`
        const deleted = await tx<{ file: string; setDir: string }[]>`
          delete from backups where ${match(tx)} and local and ${here(tx)} returning file, set_dir`
        return [...kept, ...deleted]
      })
      if (removed.length > 0) await removeFiles(removed)
      return removed.length
    },

    /** Forgets the off-site copy of these rows (it was deleted); rows left with no copy are deleted. */
    async dropRemote(kind: BackupKind, target: { id: number } | { setDirs: string[] }): Promise<number> {
      return await sql.begin(async (tx) => {
        await lockKind(tx, kind)
        const match = 'id' in target ? tx`id = ${target.id}` : tx`set_dir = any(${target.setDirs}::text[])`
        const deleted =
          await tx`delete from backups where ${match} and kind = ${kind} and not local returning id`
        const forgotten = await tx`
          update backups set remote_state = null, remote_key = null, remote_uploaded_at = null, remote_error = null
          where ${match} and kind = ${kind} and remote_state is not null returning id`
        return deleted.length + forgotten.length
      })
    },

    /** Files on this host still to upload, oldest first (another host uploads its own). */
    async awaitingUpload(limit = 1000): Promise<StoredBackup[]> {
      const rows = await sql<BackupRow[]>`
        select ${columns} from backups where remote_state in ('pending', 'failed') and local and ${here(sql)}
        order by id limit ${limit}`
      return rows.map(toStored)
    },

    async markUploaded(id: number): Promise<void> {
      await sql`
        update backups set remote_state = 'uploaded', remote_uploaded_at = now(), remote_error = null
        where id = ${id} and remote_state is not null`
    },

    async markUploadFailed(id: number, error: string): Promise<void> {
      await sql`
        update backups set remote_state = 'failed', remote_error = ${error}
        where id = ${id} and remote_state in ('pending', 'failed')`
    },

    /** Sizes of the previous files of the same database, kind and scope (newest first), for anomalies. */
    async previousSizes(backup: StoredBackup, count: number): Promise<number[]> {
      const rows = await sql<{ bytes: string }[]>`
        select bytes from backups
        where database = ${backup.database} and kind = ${backup.kind} and scope = ${backup.scope}
          and id < ${backup.id}
        order by id desc limit ${count}`
      return rows.map((r) => Number(r.bytes))
    },

    async setAnomaly(id: number, anomaly: Anomaly): Promise<void> {
      await sql`update backups set anomaly = ${sql.json(anomaly as unknown as JsonValue)} where id = ${id}`
    },

    /** Records a restore check; null when the backup was deleted meanwhile. */
    async setVerified(id: number, result: VerifyResult): Promise<StoredBackup | null> {
      const [row] = await sql<BackupRow[]>`
        update backups set verified_at = now(), verify_result = ${sql.json(result as unknown as JsonValue)}
        where id = ${id} returning ${columns}`
      return row ? toStored(row) : null
    },

    /** The newest globals.sql with a copy to check, for restore drills. */
    async newestGlobals(): Promise<StoredBackup | null> {
      const [row] = await sql<BackupRow[]>`
        select ${columns} from backups where scope = 'globals' and (local or remote_state = 'uploaded')
        order by id desc limit 1`
      return row ? toStored(row) : null
    },

    /** The newest file of each database (scope database) with a copy to check, for restore drills. */
    async newestPerDatabase(): Promise<StoredBackup[]> {
      const rows = await sql<BackupRow[]>`
        select distinct on (database) ${columns} from backups
        where scope = 'database' and (local or remote_state = 'uploaded')
        order by database, id desc`
      return rows.map(toStored)
    },
  }
}

export type BackupStore = ReturnType<typeof createBackupStore>
