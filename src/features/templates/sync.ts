// Makes the templates table match TEMPLATES_DIR: insert new files, update changed ones (by sha256),
// delete rows whose file is gone, and leave the rest untouched unless forced. All writes happen in
// one transaction, so a failure leaves the table exactly as it was.
// Rules it keeps:
// - a sync that would delete every row, or more than half of them, is refused before anything is
//   written (mass_delete_refused), unless allowMassDelete: an empty or half-mounted TEMPLATES_DIR
//   looks exactly like "every template was deleted", and the embeddings go with the rows;
// - a file that exists but cannot be parsed keeps its row (a bad edit does not delete a template).
import type { Sql, TransactionSql } from 'postgres'
import type { JsonValue } from '../../lib/json.js'
import { type FileWarning, findTemplateFiles, type ParsedTemplate, readTemplate } from './files.js'

export interface SyncResult {
  added: number
  updated: number
  unchanged: number
  removed: number
  warnings: FileWarning[]
}

/** The result, and which files it was: every path added or removed, and those whose content changed. */
export interface SyncOutcome extends SyncResult {
  paths: { added: string[]; changed: string[]; removed: string[] }
}

export interface SyncOptions {
  force: boolean
  allowMassDelete: boolean
  signal: AbortSignal
  /** Told after each file read: how many of how many. */
  onRead?: (read: number, total: number) => void
}

interface ExistingRow {
  id: string
  path: string
  sha256: string
}

// Any constant shared by every Steward process: two syncs at once would race on the same paths.
const SYNC_LOCK = 0x74706c73

/**
 * The sync would delete all templates or more than half of them. Not retryable: the directory will
 * not fill itself in the seconds before a retry; someone has to look (the run_failed alert).
 */
export class MassDeleteRefused extends Error {
  override name = 'MassDeleteRefused'
  readonly code = 'mass_delete_refused'
  readonly retryable = false
}

/** Whether deleting `gone` of `total` rows needs allowMassDelete: all of them, or over half. */
export function isMassDelete(gone: number, total: number): boolean {
  return gone > 0 && (gone === total || gone * 2 > total)
}

/** Reads every file first (no transaction held open during I/O), then writes in one transaction. */
export async function syncTemplates(sql: Sql, root: string, options: SyncOptions): Promise<SyncOutcome> {
  const { parsed, warnings } = await readAll(root, options)
  // A file that exists but cannot be parsed keeps its row: a bad edit should not delete a template.
  const present = new Set([...parsed.map((t) => t.path), ...warnings.map((w) => w.path)])
  const counts = await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${SYNC_LOCK})`
    const rows = await tx<ExistingRow[]>`select id, path, sha256 from templates`
    // Decided before the first write, so a refused sync changes nothing at all.
    const goneRows = rows.filter((r) => !present.has(r.path))
    const gone = goneRows.map((r) => r.id)
    if (!options.allowMassDelete && isMassDelete(gone.length, rows.length)) {
      throw new MassDeleteRefused(
        `template-sync would delete ${gone.length} of ${rows.length} templates (and their embeddings): ` +
          `${root} holds ${present.size} template file(s). Refused, nothing was changed. If the files ` +
          'really are gone, run template-sync with {"allowMassDelete": true}.',
      )
    }
    const existing = new Map(rows.map((r) => [r.path, r]))
    const result = { added: 0, updated: 0, unchanged: 0, removed: 0 }
    const paths: SyncOutcome['paths'] = { added: [], changed: [], removed: [] }
    for (const template of parsed) {
      options.signal.throwIfAborted()
      const row = existing.get(template.path)
      if (!row) {
        await insert(tx, template)
        result.added += 1
        paths.added.push(template.path)
      } else if (options.force || row.sha256 !== template.sha256) {
        await update(tx, row.id, template)
        result.updated += 1
        if (row.sha256 !== template.sha256) paths.changed.push(template.path)
      } else result.unchanged += 1
    }
    if (gone.length > 0) await tx`delete from templates where id in ${tx(gone)}`
    result.removed = gone.length
    paths.removed = goneRows.map((r) => r.path)
    return { ...result, paths }
  })
  const { paths, ...result } = counts
  return { ...result, warnings, paths }
}

async function readAll(root: string, { signal, onRead }: SyncOptions) {
  const parsed: ParsedTemplate[] = []
  const warnings: FileWarning[] = []
  const files = await findTemplateFiles(root, signal)
  onRead?.(0, files.length)
  for (const file of files) {
    signal.throwIfAborted()
    const template = await readTemplate(root, file).catch((err: Error) => `unreadable: ${err.message}`)
    if (typeof template === 'string') warnings.push({ path: file, reason: template })
    else parsed.push(template)
    onRead?.(parsed.length + warnings.length, files.length)
  }
  return { parsed, warnings }
}

const json = (tx: TransactionSql, value: Record<string, unknown>) => tx.json(value as JsonValue)

async function insert(tx: TransactionSql, t: ParsedTemplate): Promise<void> {
  await tx`
    insert into templates (path, name, format, metadata, body, sha256)
    values (${t.path}, ${t.name}, ${t.format}, ${json(tx, t.metadata)}, ${t.body}, ${t.sha256})`
}

async function update(tx: TransactionSql, id: string, t: ParsedTemplate): Promise<void> {
  await tx`
    update templates
    set name = ${t.name}, format = ${t.format}, metadata = ${json(tx, t.metadata)}, body = ${t.body},
        sha256 = ${t.sha256}, updated_at = now(), synced_at = now()
    where id = ${id}`
}
