// The backups table and the files it points at: list and read, record a finished set, retention,
// delete, open for download, verify. A row exists only for a file that was fsynced and renamed
// into place; files and rows are removed together, row first (see deleteRows).
import fs from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../../config.js'
import { Conflict, NotFound } from '../../lib/errors.js'
import type { JsonValue } from '../../lib/json.js'
import { allOf, decodeCursor, type Page, toPage } from '../../lib/pagination.js'
import { type OpenBackup, openBackupFile } from './download.js'
import { type BackupFormat, type BackupKind, removeSetDir, resolveInside } from './files.js'
import type { Backup, StoredBackup, VerifyResult } from './schemas.js'
import { VerifyUnavailable, verifyBackup } from './verify.js'

interface BackupRow {
  id: string
  kind: BackupKind
  database: string
  file: string
  setDir: string
  format: BackupFormat
  bytes: string
  sha256: string
  runId: string | null
  createdAt: Date
  verifiedAt: Date | null
  verifyResult: VerifyResult | null
}

export interface NewBackup {
  kind: BackupKind
  database: string
  file: string
  setDir: string
  format: BackupFormat
  bytes: number
  sha256: string
}

export interface BackupFilter {
  kind?: BackupKind
  database?: string
}

const COLUMNS = [
  'id',
  'kind',
  'database',
  'file',
  'set_dir',
  'format',
  'bytes',
  'sha256',
  'run_id',
  'created_at',
  'verified_at',
  'verify_result',
]

function toStored(row: BackupRow): StoredBackup {
  return {
    id: Number(row.id),
    kind: row.kind,
    database: row.database,
    file: row.file,
    bytes: Number(row.bytes),
    sha256: row.sha256,
    runId: row.runId === null ? null : Number(row.runId),
    createdAt: row.createdAt.toISOString(),
    verifiedAt: row.verifiedAt ? row.verifiedAt.toISOString() : null,
    verifyResult: row.verifyResult,
    setDir: row.setDir,
    format: row.format,
  }
}

/** The API representation: the set directory and format stay internal (the file name says both). */
export function toBackup({ setDir: _setDir, format: _format, ...backup }: StoredBackup): Backup {
  return backup
}

export function createBackupsService(sql: Sql, config: Config, log?: FastifyBaseLogger) {
  const columns = sql(COLUMNS)
  const verifying = new Set<number>()

  async function get(id: number): Promise<StoredBackup | null> {
    const [row] = await sql<BackupRow[]>`select ${columns} from backups where id = ${id}`
    return row ? toStored(row) : null
  }

  /**
   * Deletes rows, then their files. Row first: a crash in between leaves a file without a row (an
   * orphan, reported by the sweep and never served), never a row that points at nothing.
   */
  async function deleteRows(
    kind: BackupKind,
    target: { id: number } | { setDirs: string[] },
  ): Promise<string[]> {
    const deleted = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('steward.backups'), hashtext(${kind}))`
      return 'id' in target
        ? await tx<{ file: string; setDir: string }[]>`
            delete from backups where id = ${target.id} returning file, set_dir`
        : await tx<{ file: string; setDir: string }[]>`
            delete from backups where kind = ${kind} and set_dir = any(${target.setDirs}::text[])
            returning file, set_dir`
    })
    const dirs = [...new Set(deleted.map((r) => r.setDir))]
    const left = await sql<{ setDir: string }[]>`
      select distinct set_dir from backups where set_dir = any(${dirs}::text[])`
    const remaining = new Set(left.map((r) => r.setDir))
    for (const row of deleted) if (remaining.has(row.setDir)) await unlinkInside(row.file)
    for (const dir of dirs) if (!remaining.has(dir)) await removeSetDir(config.backupDir, dir)
    return dirs
  }

  async function unlinkInside(file: string): Promise<void> {
    try {
      await fs.rm(await resolveInside(config.backupDir, file), { force: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  return {
    get,

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
            insert into backups (kind, database, file, set_dir, format, bytes, sha256, run_id)
            values (${f.kind}, ${f.database}, ${f.file}, ${f.setDir}, ${f.format}, ${f.bytes}, ${f.sha256},
                    ${runId === null ? null : tx`(select id from job_runs where id = ${runId})`})
            returning ${columns}`
          rows.push(row as BackupRow)
        }
        signal?.throwIfAborted()
        return rows.map(toStored)
      })
    },

    /**
     * Keeps the newest `keep` sets of a kind, and also the newest set whose every file verified, so
     * the last backup known to restore is never lost to newer ones that did not. The newest set is
     * always kept. Returns the set directories removed.
     */
    async applyRetention(kind: BackupKind, keep: number): Promise<string[]> {
      const sets = await sql<{ setDir: string; verified: boolean }[]>`
        select set_dir, bool_and(coalesce(verify_result->>'ok' = 'true', false)) as verified
        from backups where kind = ${kind}
        group by set_dir order by max(id) desc`
      const kept = new Set(sets.slice(0, Math.max(1, keep)).map((s) => s.setDir))
      const newestVerified = sets.find((s) => s.verified)
      if (newestVerified) kept.add(newestVerified.setDir)
      const retire = sets.map((s) => s.setDir).filter((dir) => !kept.has(dir))
      if (retire.length === 0) return []
      return await deleteRows(kind, { setDirs: retire })
    },

    /** Deletes one backup: its row, then its file (and its set directory once empty); returns what it was. */
    async remove(id: number): Promise<Backup> {
      const backup = await get(id)
      if (!backup) throw new NotFound(`backup ${id} does not exist`)
      const removed = await deleteRows(backup.kind, { id })
      if (removed.length === 0) throw new NotFound(`backup ${id} does not exist`)
      return toBackup(backup)
    },

    /** The backup and its open file, for a download; the caller closes (or streams) the handle. */
    async open(id: number): Promise<{ backup: StoredBackup } & OpenBackup> {
      const backup = await get(id)
      if (!backup) throw new NotFound(`backup ${id} does not exist`)
      return { backup, ...(await openBackupFile(config.backupDir, backup)) }
    },

    /** Restores a backup into a scratch database, records the outcome on its row and returns it. */
    async verify(id: number, signal: AbortSignal): Promise<StoredBackup> {
      const backup = await get(id)
      if (!backup) throw new NotFound(`backup ${id} does not exist`)
      if (verifying.has(id)) throw new Conflict(`backup ${id} is already being verified`)
      verifying.add(id)
      try {
        const result = await verifyBackup({ sql, config, signal }, backup)
        log?.info({ backupId: id, ok: result.ok, durationMs: result.durationMs }, 'backup verified')
        const [row] = await sql<BackupRow[]>`
          update backups set verified_at = now(), verify_result = ${sql.json(result as unknown as JsonValue)}
          where id = ${id} returning ${columns}`
        if (!row) throw new NotFound(`backup ${id} was deleted while it was being verified`)
        return toStored(row)
      } catch (err) {
        if (err instanceof VerifyUnavailable) throw new Conflict(`cannot verify here: ${err.message}`)
        throw err
      } finally {
        verifying.delete(id)
      }
    },
  }
}

export type BackupsService = ReturnType<typeof createBackupsService>
