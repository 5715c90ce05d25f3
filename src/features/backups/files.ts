// The backup directory's layout: BACKUP_DIR/<kind>/backup_YYYYMMDD_HHMMSS/<db>.<ext>, one directory
// per set, temporary files beside their destination, and the checks that keep every path inside
// BACKUP_DIR. Files are 0600 and directories 0700: a dump holds every row of the database. A
// BACKUP_DIR belongs to one host (BACKUP_HOST): a file recorded by another host is not looked for here.
import fs from 'node:fs/promises'
import path from 'node:path'
import { Conflict } from '../../lib/errors.js'

export const KINDS = ['hourly', 'daily', 'manual'] as const
export type BackupKind = (typeof KINDS)[number]

export const FORMATS = ['plain', 'custom', 'gzip'] as const
export type BackupFormat = (typeof FORMATS)[number]

export const EXTENSIONS: Record<BackupFormat, string> = { plain: '.sql', custom: '.dump', gzip: '.sql.gz' }

export const SET_NAME = /^backup_\d{8}_\d{6}(_\d+)*$/
/** `.<final name>.<run id>.tmp`: hidden, and says which run is writing it. */
export const TEMP_NAME = /^\.(.+)\.(\d+)\.tmp$/

/** 2026-01-02T03:04:05Z → 20260102_030405 */
export function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15)
}

export function tempName(finalName: string, runId: string): string {
  return `.${finalName}.${runId}.tmp`
}

/**
 * A file name for a database's dump: its name with anything but letters, digits, `_`, `-` and `.`
 * replaced (a database may be called `../x`), never hidden, unique within the set.
 */
export function fileNameFor(database: string, format: BackupFormat, taken: Set<string>): string {
  const base =
    database
      .replace(/[^A-Za-z0-9_.-]/g, '_')
      .replace(/^\./, '_')
      .slice(0, 200) || 'database'
  let name = `${base}${EXTENSIONS[format]}`
  for (let n = 2; taken.has(name); n++) name = `${base}_${n}${EXTENSIONS[format]}`
  taken.add(name)
  return name
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Claims a new set directory. mkdir is atomic, so two runs in the same second (on one host or on
 * several sharing BACKUP_DIR) never share one: the later one adds its run id. `recorded` says
 * whether another host already recorded a set of that name in its own BACKUP_DIR (file names are
 * unique across hosts, as off-site keys are).
 */
export async function createSetDir(
  backupDir: string,
  kind: BackupKind,
  now: Date,
  runId: string,
  recorded: (relative: string) => Promise<boolean> = async () => false,
) {
  const kindDir = path.join(backupDir, kind)
  await fs.mkdir(kindDir, { recursive: true, mode: 0o700 })
  const base = `backup_${stamp(now)}`
  for (const name of [base, `${base}_${runId}`, ...[2, 3, 4, 5].map((n) => `${base}_${runId}_${n}`)]) {
    if (await recorded(`${kind}/${name}`)) continue
    try {
      await fs.mkdir(path.join(kindDir, name), { mode: 0o700 })
      return { dir: path.join(kindDir, name), relative: `${kind}/${name}` }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
  throw new Error(`could not create a set directory for ${base} in ${kindDir}`)
}

export class PathEscape extends Error {}

/**
 * The absolute path of a stored relative path, refusing anything that would leave BACKUP_DIR, by
 * `..` or by a symlink.
 */
export async function resolveInside(backupDir: string, relative: string): Promise<string> {
  const root = path.resolve(backupDir)
  const full = path.resolve(root, relative)
  if (path.isAbsolute(relative) || !full.startsWith(root + path.sep)) {
    throw new PathEscape(`${relative} is outside BACKUP_DIR`)
  }
  const [realRoot, realFull] = await Promise.all([fs.realpath(root), fs.realpath(full)])
  if (!realFull.startsWith(realRoot + path.sep)) throw new PathEscape(`${relative} leads outside BACKUP_DIR`)
  return realFull
}

/** Removes a set directory with whatever is left in it (ENOENT is fine: already gone). */
export async function removeSetDir(backupDir: string, setDir: string): Promise<void> {
  const dir = await resolveInside(backupDir, setDir).catch((err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  })
  if (!dir || !SET_NAME.test(path.basename(dir))) return
  await fs.rm(dir, { recursive: true, force: true })
}

/** Where a backup's (or a set's) local copy is, as its rows say. */
export interface LocalCopy {
  local: boolean
  /** BACKUP_HOST of the instance that wrote it; null: recorded before hosts were (taken as local). */
  host: string | null
}

/** There is a local file, and it is in this host's BACKUP_DIR. */
export function isLocalHere(copy: LocalCopy, host: string): boolean {
  return copy.local && (copy.host === null || copy.host === host)
}

/** The local file is in another host's BACKUP_DIR: nothing here may read or remove it (409). */
export class FileElsewhere extends Conflict {
  readonly code = 'file_elsewhere'
  constructor(backup: LocalCopy & { id: number }, what: string) {
    const where = `is on host "${backup.host}" (its BACKUP_HOST), not here`
    super(`the local file of backup ${backup.id} ${where}: ${what}`)
  }
}
