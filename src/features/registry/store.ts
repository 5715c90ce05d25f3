// Registry snapshots (registry_snapshots): what registry-sync found in a source tree, one row per
// run, written once and then only read.
import type { Sql } from 'postgres'
import type { JsonValue } from '../../lib/json.js'
import { decodeCursor, type Page, toPage } from '../../lib/pagination.js'
import type { FileRecord, SnapshotParts } from './diff.js'

/** Rows per insert statement: 4 parameters each, well under PostgreSQL's 65,535. */
const FILE_BATCH = 5000

export interface NewSnapshot {
  runId: number | null
  sourceDir: string
  summary: object
  architecture: object
  quality: object
  dependencies: object
  trends: object
  diff: object | null
  inventory: FileRecord[]
}

export interface SnapshotSummary {
  id: number
  runId: number | null
  sourceDir: string
  createdAt: string
  summary: JsonValue
}

export interface Snapshot extends SnapshotSummary {
  architecture: JsonValue
  quality: JsonValue
  dependencies: JsonValue
  trends: JsonValue
  diff: JsonValue | null
}

interface SnapshotRow {
  id: string
  runId: string | null
  sourceDir: string
  createdAt: Date
  summary: JsonValue
  architecture?: JsonValue
  quality?: JsonValue
  dependencies?: JsonValue
  trends?: JsonValue
  diff?: JsonValue | null
}

function toSummary(row: SnapshotRow): SnapshotSummary {
  return {
    id: Number(row.id),
    runId: row.runId === null ? null : Number(row.runId),
    sourceDir: row.sourceDir,
    createdAt: row.createdAt.toISOString(),
    summary: row.summary,
  }
}

function toSnapshot(row: SnapshotRow): Snapshot {
  return {
    ...toSummary(row),
    architecture: row.architecture ?? null,
    quality: row.quality ?? null,
    dependencies: row.dependencies ?? null,
    trends: row.trends ?? null,
    diff: row.diff ?? null,
  }
}

const json = (sql: Sql, value: object) => sql.json(value as JsonValue)

export function createRegistryService(sql: Sql) {
  return {
    /** The newest snapshot of this directory: what the next one is compared with. */
    async previous(sourceDir: string): Promise<(SnapshotParts & { id: number }) | null> {
      const [row] = await sql<Array<SnapshotParts & { id: string }>>`
        select id, architecture, quality, dependencies from registry_snapshots
        where source_dir = ${sourceDir} order by id desc limit 1`
      if (!row) return null
      const inventory = await sql<FileRecord[]>`
        select path, language, lines from registry_files where snapshot_id = ${row.id}`
      return { ...row, id: Number(row.id), inventory: inventory.length > 0 ? [...inventory] : undefined }
    },

    /** The snapshot and its file list, replacing the file list of the directory's older snapshots. */
    async insert(s: NewSnapshot): Promise<number> {
      return await sql.begin(async (tx) => {
        const [row] = await tx<{ id: string }[]>`
          insert into registry_snapshots (run_id, source_dir, summary, architecture, quality, dependencies,
                                          trends, diff)
          values (${s.runId}, ${s.sourceDir}, ${json(sql, s.summary)}, ${json(sql, s.architecture)},
                  ${json(sql, s.quality)}, ${json(sql, s.dependencies)}, ${json(sql, s.trends)},
                  ${s.diff === null ? null : json(sql, s.diff)})
          returning id`
        const id = Number(row?.id)
        for (let i = 0; i < s.inventory.length; i += FILE_BATCH) {
          const rows = s.inventory.slice(i, i + FILE_BATCH).map((f) => ({ snapshotId: id, ...f }))
          await tx`insert into registry_files ${tx(rows, 'snapshotId', 'path', 'language', 'lines')}`
        }
        await tx`
          delete from registry_files where snapshot_id in (
            select id from registry_snapshots where source_dir = ${s.sourceDir} and id < ${id})`
        return id
      })
    },

    /** Newest first, keyset-paginated on id; summaries only (the full parts can be large). */
    async list(limit: number, cursor?: string): Promise<Page<SnapshotSummary>> {
      const after = cursor ? decodeCursor(cursor) : null
      const rows = await sql<SnapshotRow[]>`
        select id, run_id, source_dir, created_at, summary from registry_snapshots
        where ${after === null ? sql`true` : sql`id < ${after}`}
        order by id desc limit ${limit + 1}`
      return toPage(rows.map(toSummary), limit)
    },

    async get(id: number): Promise<Snapshot | null> {
      const [row] = await sql<SnapshotRow[]>`select * from registry_snapshots where id = ${id}`
      return row ? toSnapshot(row) : null
    },

    async latest(): Promise<Snapshot | null> {
      const [row] = await sql<SnapshotRow[]>`select * from registry_snapshots order by id desc limit 1`
      return row ? toSnapshot(row) : null
    },
  }
}

export type RegistryService = ReturnType<typeof createRegistryService>
