// Housekeeping for what interrupted work leaves behind: temporary files of crashed backup runs,
// empty set directories, finished files that never got their row (reported, never deleted), and
// scratch databases and login roles of interrupted restore checks. Run at start-up and after each
// successful set.
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Sql } from 'postgres'
import type { Config } from '../../config.js'
import type { RunLogger } from '../../engine/job.js'
import { KINDS, SET_NAME, TEMP_NAME } from './files.js'
import { RESTORE_TMP } from './restore/fetch.js'
import { LOGIN_PREFIX, SCRATCH_PREFIX, scratchCreatedAt } from './restore/sandbox.js'

export interface SweepReport {
  removedTemp: string[]
  removedEmptyDirs: string[]
  /** Finished files with no row (a crash between rename and insert): reported, never deleted. */
  unrecorded: string[]
}

export interface SweepOptions {
  /** Run ids whose temporary files must stay (runs still in progress somewhere). */
  liveRuns: Set<string>
  recorded: Set<string>
  /** Empty set directories are removed only when no backup is in progress anywhere. */
  removeEmptyDirs: boolean
}

/** Removes what crashed runs left behind in BACKUP_DIR/<kind>/backup_*. */
async function sweepFiles(backupDir: string, options: SweepOptions): Promise<SweepReport> {
  const report: SweepReport = { removedTemp: [], removedEmptyDirs: [], unrecorded: [] }
  for (const kind of KINDS) {
    for (const set of await readDir(path.join(backupDir, kind))) {
      if (!set.isDirectory() || !SET_NAME.test(set.name)) continue
      const setDir = path.join(backupDir, kind, set.name)
      const entries = await readDir(setDir)
      for (const entry of entries) {
        const relative = `${kind}/${set.name}/${entry.name}`
        const temp = TEMP_NAME.exec(entry.name)
        if (temp && !options.liveRuns.has(temp[2] as string)) {
          await fs.rm(path.join(setDir, entry.name), { force: true })
          report.removedTemp.push(relative)
        } else if (!temp && !options.recorded.has(relative)) {
          report.unrecorded.push(relative)
        }
      }
      if (options.removeEmptyDirs && (await readDir(setDir)).length === 0) {
        await fs.rmdir(setDir).catch(() => {})
        report.removedEmptyDirs.push(`${kind}/${set.name}`)
      }
    }
  }
  return report
}

async function readDir(dir: string) {
  try {
    return await fs.readdir(dir, { withFileTypes: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

const stale = (names: string[], maxAgeMs: number) =>
  names.filter((name) => Date.now() - (scratchCreatedAt(name)?.getTime() ?? Date.now()) > maxAgeMs)

/**
 * Drops scratch databases of restore checks that were interrupted (a crash) hours ago, then their
 * login roles. Without FORCE: a database someone is connected to is a check still running, and
 * stays (and so does its role, which owns it).
 */
export async function dropStaleScratchDatabases(
  sql: Sql,
  log: RunLogger,
  maxAgeMs = 6 * 3600_000,
): Promise<string[]> {
  const databases = await sql<{ name: string }[]>`
    select datname as name from pg_database where left(datname, ${SCRATCH_PREFIX.length}) = ${SCRATCH_PREFIX}`
  const dropped: string[] = []
  for (const name of stale(
    databases.map((r) => r.name),
    maxAgeMs,
  )) {
    await sql`drop database if exists ${sql(name)}`.then(
      () => dropped.push(name),
      (err) => log.warn('scratch database still in use; left alone', { err, database: name }),
    )
  }
  const roles = await sql<{ name: string }[]>`
    select rolname as name from pg_roles where left(rolname, ${LOGIN_PREFIX.length}) = ${LOGIN_PREFIX}`
  for (const name of stale(
    roles.map((r) => r.name),
    maxAgeMs,
  )) {
    await sql`drop role if exists ${sql(name)}`.then(
      () => dropped.push(name),
      (err) => log.warn('restore role still owns a database; left alone', { err, role: name }),
    )
  }
  if (dropped.length > 0) log.info('dropped what interrupted restore checks left behind', { dropped })
  return dropped
}

/**
 * Removes downloaded or decrypted copies (BACKUP_DIR/.restore-tmp) that an interrupted restore
 * check or restore left behind: those older than a day, since a check of another instance sharing
 * BACKUP_DIR may be using a newer one.
 */
export async function sweepRestoreTemp(backupDir: string, log: RunLogger, maxAgeMs = 24 * 3600_000) {
  const dir = path.join(backupDir, RESTORE_TMP)
  const removed: string[] = []
  for (const entry of await readDir(dir)) {
    const file = path.join(dir, entry.name)
    const stat = await fs.stat(file).catch(() => null)
    if (!stat || Date.now() - stat.mtimeMs <= maxAgeMs) continue
    await fs.rm(file, { force: true })
    removed.push(entry.name)
  }
  if (removed.length > 0) log.info('removed temporary copies of interrupted restores', { removed })
  return removed
}

/**
 * Removes temporary files of runs that are no longer running and empty set directories, and
 * reports finished files without a row. Runs count as alive while their heartbeat is fresh, so
 * an instance starting up never removes the file another instance is writing.
 */
export async function sweepBackupDir(
  sql: Sql,
  config: Config,
  log: RunLogger,
  exceptRun?: string,
): Promise<SweepReport> {
  const live = await sql<{ id: string }[]>`
    select id from job_runs
    where job = 'database-backup' and state = 'running'
      and coalesce(heartbeat_at, started_at) > now() - ${config.runStaleMs} * interval '1 millisecond'`
  const liveRuns = new Set(live.map((r) => r.id))
  const recorded = await sql<{ file: string }[]>`select file from backups`
  const others = [...liveRuns].filter((id) => id !== exceptRun)
  const report = await sweepFiles(config.backupDir, {
    liveRuns,
    recorded: new Set(recorded.map((r) => r.file)),
    removeEmptyDirs: others.length === 0,
  })
  if (report.removedTemp.length > 0 || report.removedEmptyDirs.length > 0) {
    log.info('removed what interrupted backups left in BACKUP_DIR', { ...report })
  }
  if (report.unrecorded.length > 0) {
    log.warn(
      'BACKUP_DIR holds finished files without a row (a backup interrupted after writing); not deleted',
      {
        unrecorded: report.unrecorded.slice(0, 20),
        count: report.unrecorded.length,
      },
    )
  }
  return report
}
