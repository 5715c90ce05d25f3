// `steward backup sets [--remote [s3://bucket/prefix]] [--limit N]`: the backup sets, newest first,
// with their files, sizes and whether they are encrypted; from the backups table, or with --remote
// from the bucket alone (no database needed), which is what an operator runs first on a new machine
// to find the set to restore.
//
// Rules it keeps:
// - the bucket listing reads only the layout (bucket.ts): one ListObjectsV2 walk, no object is
//   opened, so it is quick and needs only list rights; the restore proves each file it reads;
// - output is for people and for grep: one line per set, then one per file, the set's URL with
//   --remote so a file's full URL is that line plus its name.
import { parseArgs } from 'node:util'
import type { Sql } from 'postgres'
import type { Config } from '../../../config.js'
import { configuredBucket, listBucketSets, openBucket } from './bucket.js'
import { CommandError } from './command-line.js'

const SYNOPSIS = 'usage: steward backup sets [--remote [s3://bucket/prefix]] [--limit <n>]'

export const SETS_USAGE = `${SYNOPSIS}

Lists the backup sets, newest first, with their files, sizes and whether they are encrypted.

      --remote [s3://…]  from the bucket, without any database: BACKUP_REMOTE_URL, or the
                         s3://bucket/prefix given; credentials and endpoint from the AWS_* variables
                         (BACKUP_REMOTE_FORCE_PATH_STYLE applies). Without --remote: from Steward's
                         backups table (DATABASE_URL, or the embedded database of DATA_DIR), with ids
  -n, --limit <n>        at most this many sets (default 10)
  -h, --help             this text

Then: steward backup restore <set URL><file> --database <new name> [--globals] [--identity key.txt]`

export interface SetsOptions {
  /** From the bucket, not the backups table. */
  remote: boolean
  /** The bucket's s3://bucket/prefix; BACKUP_REMOTE_URL when not given. */
  url?: string
  limit: number
}

const usage = (message: string) =>
  new CommandError(`${message}\n${SYNOPSIS}\n(steward backup sets --help explains the options)`, 2)

export function parseSetsArgs(argv: string[]): SetsOptions {
  let parsed: ReturnType<typeof parseSets>
  try {
    parsed = parseSets(argv)
  } catch (err) {
    throw usage((err as Error).message)
  }
  const { values, positionals } = parsed
  const limit = values.limit === undefined ? 10 : Number(values.limit)
  if (!Number.isSafeInteger(limit) || limit < 1) throw usage(`--limit "${values.limit}": a positive integer`)
  if (positionals.length > 1) throw usage('give at most one s3://bucket/prefix')
  const url = positionals[0]
  if (url !== undefined && !/^s3:\/\//i.test(url)) throw usage(`"${url}" is not an s3://bucket/prefix URL`)
  if (url !== undefined && !values.remote) throw usage(`${url}: a bucket is listed with --remote`)
  return { remote: values.remote === true, ...(url === undefined ? {} : { url }), limit }
}

function parseSets(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { remote: { type: 'boolean' }, limit: { type: 'string', short: 'n' } },
  })
}

/** A set as listed, from either place. */
export interface SetView {
  setDir: string
  kind: string
  createdAt: string | null
  /** The set's s3:// URL (listed from the bucket). */
  url: string | null
  files: Array<{
    name: string
    bytes: number
    encrypted: boolean
    scope: 'database' | 'globals'
    /** The backups row (listed from the table). */
    id: number | null
    /** Which copies exist (listed from the table). */
    copies: string | null
  }>
}

/** The newest sets in the bucket of `url`, else of BACKUP_REMOTE_URL. */
export async function setsInBucket(config: Config, url: string | undefined, limit: number) {
  const store = url ? openBucket(url, config) : configuredBucket(config, '--remote lists a bucket')
  try {
    const sets = await listBucketSets(store)
    const views: SetView[] = sets.slice(0, limit).map((set) => ({
      ...set,
      files: set.files.map(({ name, bytes, encrypted, scope }) => {
        return { name, bytes, encrypted, scope, id: null, copies: null }
      }),
    }))
    return { place: `s3://${store.bucket}/${store.prefix ? `${store.prefix}/` : ''}`, sets: views }
  } finally {
    store.close()
  }
}

interface FileRow {
  id: string
  setDir: string
  kind: string
  scope: 'database' | 'globals'
  file: string
  bytes: string
  encrypted: boolean
  local: boolean
  remoteState: string | null
  setCreatedAt: Date
}

/** The newest sets in the backups table (Steward's database, camelCase columns). */
export async function setsInTable(sql: Sql, limit: number) {
  const rows = await sql<FileRow[]>`
    with newest as (
      select set_dir, max(id) as newest_id, min(created_at) as set_created_at from backups
      group by set_dir order by newest_id desc limit ${limit})
    select b.id, b.set_dir, b.kind, b.scope, b.file, b.bytes, b.encrypted, b.local, b.remote_state,
           n.set_created_at
    from backups b join newest n using (set_dir)
    order by n.newest_id desc, b.file`
  const sets = new Map<string, SetView>()
  for (const row of rows) {
    const set = sets.get(row.setDir) ?? {
      setDir: row.setDir,
      kind: row.kind,
      createdAt: row.setCreatedAt.toISOString(),
      url: null,
      files: [],
    }
    const { scope, encrypted } = row
    const name = row.file.slice(row.setDir.length + 1)
    set.files.push({
      name,
      bytes: Number(row.bytes),
      encrypted,
      scope,
      id: Number(row.id),
      copies: copies(row),
    })
    sets.set(row.setDir, set)
  }
  return { place: 'the backups table', sets: [...sets.values()] }
}

function copies(row: FileRow): string {
  const offsite =
    row.remoteState === 'uploaded' ? 'off-site' : row.remoteState && `off-site ${row.remoteState}`
  return [row.local && 'local', offsite].filter(Boolean).join(', ')
}

function encryption(files: SetView['files']): string {
  const encrypted = files.filter((f) => f.encrypted).length
  if (encrypted === 0) return 'not encrypted'
  return encrypted === files.length ? 'encrypted (age)' : 'partly encrypted'
}

export function formatSets(listing: { place: string; sets: SetView[] }): string {
  if (listing.sets.length === 0) return `no backup sets in ${listing.place}`
  const lines = [`${listing.sets.length} set(s) in ${listing.place}, newest first:`]
  for (const set of listing.sets) {
    const facts = `${set.files.length} file(s), ${encryption(set.files)}`
    lines.push('', `${set.setDir}  ${set.createdAt ?? 'time unknown'}  ${facts}`)
    if (set.url) lines.push(`  ${set.url}`)
    const width = Math.max(...set.files.map((f) => f.name.length))
    for (const f of set.files) {
      const id = f.id === null ? '' : `#${f.id}`.padEnd(8)
      const notes = [f.scope === 'globals' ? 'roles (--globals)' : null, f.copies].filter(Boolean).join('; ')
      lines.push(`  ${id}${f.name.padEnd(width)}  ${size(f.bytes).padStart(10)}  ${notes}`.trimEnd())
    }
  }
  return lines.join('\n')
}

/** 12890123 → "12.3 MiB" */
export function size(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`
}
