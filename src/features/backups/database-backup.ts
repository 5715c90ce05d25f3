// database-backup: pg_dump of every database in BACKUP_DATABASES into one set,
// BACKUP_DIR/<type>/backup_YYYYMMDD_HHMMSS/<db>.sql (the seed's BackupWorker layout), each file
// checksummed, fsynced and recorded; then retention for hourly and daily sets. A set is all or
// nothing: if any database fails, the files already written for it are removed and no row is kept.
import path from 'node:path'
import { Type } from 'typebox'
import type { Config } from '../../config.js'
import { defineJob, type JobContext } from '../../engine/job.js'
import { dumpToFile } from './dump.js'
import {
  type BackupFormat,
  type BackupKind,
  createSetDir,
  fileNameFor,
  fsyncDir,
  removeSetDir,
} from './files.js'
import { sweepBackupDir } from './housekeeping.js'
import { type BackupsService, createBackupsService, type NewBackup } from './store.js'
import { connectionEnv, locateTool, parseDatabaseUrl, serverVersion } from './tools.js'

const BackupArgs = Type.Object(
  {
    type: Type.Enum(['hourly', 'daily', 'manual'], {
      description: 'Which set this is: hourly and daily sets are pruned by retention, manual ones are kept.',
    }),
  },
  { additionalProperties: false },
)

type Context = JobContext<{ type: BackupKind }>

export function backupFormat(config: Config): BackupFormat {
  if (config.backupFormat === 'custom') return 'custom'
  return config.backupCompress === 'gzip' ? 'gzip' : 'plain'
}

function keepFor(kind: BackupKind, config: Config): number | null {
  if (kind === 'hourly') return config.backupKeepHourly
  if (kind === 'daily') return config.backupKeepDaily
  return null
}

async function databasesToDump({ sql, config }: Context): Promise<string[]> {
  if (config.backupDatabases.length > 0) return config.backupDatabases
  const [own] = await sql<{ name: string }[]>`select current_database() as name`
  return [own?.name as string]
}

/** Dumps every database into a fresh set directory; returns the files, not yet recorded. */
async function dumpSet(ctx: Context, setDir: { dir: string; relative: string }): Promise<NewBackup[]> {
  const { config, sql, signal, runId, log } = ctx
  const conn = parseDatabaseUrl(config.databaseUrl as string)
  const pgDump = await locateTool('pg_dump', await serverVersion(sql), { binDir: config.backupPgBinDir })
  const format = backupFormat(config)
  const taken = new Set<string>()
  const files: NewBackup[] = []
  for (const database of await databasesToDump(ctx)) {
    signal.throwIfAborted()
    const name = fileNameFor(database, format, taken)
    const started = Date.now()
    const env = connectionEnv(conn, database)
    const dump = await dumpToFile({ pgDump, format, env, file: path.join(setDir.dir, name), runId, signal })
    if (dump.stderr) log.warn({ database, stderr: dump.stderr }, 'pg_dump printed warnings')
    log.info(
      { database, bytes: dump.bytes, ms: Date.now() - started, pgDump: pgDump.path },
      'database dumped',
    )
    const file = `${setDir.relative}/${name}`
    files.push({ kind: ctx.args.type, database, file, setDir: setDir.relative, format, ...dump })
  }
  // The files' names, and the set directory's own entry, must survive a power cut too.
  await fsyncDir(setDir.dir)
  await fsyncDir(path.dirname(setDir.dir))
  return files
}

/**
 * Removes a set that failed. If recording it may have committed (the database went away during
 * the commit), the files stay: a row must never point at a missing file.
 */
async function discardSet(ctx: Context, relative: string): Promise<void> {
  const recorded = await ctx.sql`select 1 from backups where set_dir = ${relative} limit 1`.then(
    (rows) => rows.length > 0,
    () => true,
  )
  if (recorded) return
  await removeSetDir(ctx.config.backupDir, relative).catch((err) =>
    ctx.log.error({ err, set: relative }, 'could not remove the files of a failed backup set'),
  )
}

/** Retention runs only after a successful set; its own failure is reported, not retried as a backup. */
async function retain(ctx: Context, backups: BackupsService) {
  const keep = keepFor(ctx.args.type, ctx.config)
  try {
    const removedSets = keep === null ? [] : await backups.applyRetention(ctx.args.type, keep)
    if (removedSets.length > 0) ctx.log.info({ removedSets, keep }, 'old backup sets removed')
    await sweepBackupDir(ctx.sql, ctx.config, ctx.log, ctx.runId)
    return { keep, removedSets }
  } catch (err) {
    ctx.log.error({ err }, 'backup retention failed')
    return { keep, removedSets: [], error: String((err as Error).message ?? err) }
  }
}

export const databaseBackup = defineJob({
  name: 'database-backup',
  description:
    'Dumps every database in BACKUP_DATABASES with pg_dump into BACKUP_DIR/<type>/backup_YYYYMMDD_HHMMSS/, ' +
    'records each file with its size and sha256, then keeps the newest BACKUP_KEEP_HOURLY hourly and ' +
    'BACKUP_KEEP_DAILY daily sets (manual sets are kept until deleted).',
  args: BackupArgs,
  timeoutMs: 30 * 60_000,
  maxAttempts: 3,
  schedules: [
    { name: 'backup-hourly', cron: '0 * * * *', args: { type: 'hourly' } },
    { name: 'backup-daily', cron: '0 1 * * *', args: { type: 'daily' } },
  ],
  async run(ctx) {
    const { config, sql, log, runId, signal } = ctx
    const backups = createBackupsService(sql, config, log)
    const setDir = await createSetDir(config.backupDir, ctx.args.type, new Date(), runId)
    let recorded: Awaited<ReturnType<BackupsService['recordSet']>>
    try {
      const files = await dumpSet(ctx, setDir)
      recorded = await backups.recordSet(files, runId, signal)
    } catch (err) {
      await discardSet(ctx, setDir.relative)
      throw err
    }
    const retention = await retain(ctx, backups)
    return {
      kind: ctx.args.type,
      set: setDir.relative,
      bytes: recorded.reduce((sum, b) => sum + b.bytes, 0),
      backups: recorded.map((b) => ({
        id: b.id,
        database: b.database,
        file: b.file,
        bytes: b.bytes,
        sha256: b.sha256,
      })),
      retention,
    }
  },
})
