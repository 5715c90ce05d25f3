// The backup directory's layout: BACKUP_DIR/<kind>/backup_YYYYMMDD_HHMMSS/<db>.<ext>, one directory
// per set, temporary files beside their destination, and the checks that keep every path inside
// BACKUP_DIR. Files are 0600 and directories 0700: a dump holds every row of the database.
import fs from 'node:fs/promises'
import path from 'node:path'

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
 * several sharing BACKUP_DIR) never share one: the later one adds its run id.
 */
export async function createSetDir(backupDir: string, kind: BackupKind, now: Date, runId: string) {
  const kindDir = path.join(backupDir, kind)
  await fs.mkdir(kindDir, { recursive: true, mode: 0o700 })
  const base = `backup_${stamp(now)}`
  for (const name of [base, `${base}_${runId}`, ...[2, 3, 4, 5].map((n) => `${base}_${runId}_${n}`)]) {
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
