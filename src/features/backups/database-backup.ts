// database-backup: pg_dump of every database in BACKUP_DATABASES, and the server's roles
// (pg_dumpall --globals-only), into one set, BACKUP_DIR/<type>/backup_YYYYMMDD_HHMMSS/ (the seed's
// BackupWorker layout); each file age-encrypted when recipients are configured, checksummed,
// fsynced and recorded. Then: size anomalies, local retention, the off-site upload of every file
// still waiting (this set's included) and off-site retention. A set is all or nothing: if any dump
// fails, the files already written for it are removed and no row is kept. A set that could not be
// uploaded stays local and pending (retention keeps it) and the run fails with upload_failed.
// Watching it: each step is a line of the run's log, and progress counts the bytes stored against
// the databases' size (backup-progress.ts).
import path from 'node:path'
import { Type } from 'typebox'
import type { Config } from '../../config.js'
import { defineJob, type JobContext } from '../../engine/job.js'
import { flagAnomalies } from './anomalies.js'
import { bytesProgress, estimateBytes, logToolOutput } from './backup-progress.js'
import { dumpToFile, pgDumpArgs } from './dump.js'
import {
  type BackupFormat,
  type BackupKind,
  createSetDir,
  fileNameFor,
  fsyncDir,
  removeSetDir,
} from './files.js'
import { sweepBackupDir } from './housekeeping.js'
import { loadRecipients } from './keys.js'
import { createOffsite, type Offsite } from './offsite/offsite.js'
import { applyLocalRetention } from './retention.js'
import type { StoredBackup } from './schemas.js'
import { type BackupStore, createBackupStore, type NewBackup } from './store.js'
import {
  BackupError,
  type Connection,
  connectionEnv,
  locateTool,
  parseDatabaseUrl,
  serverVersion,
} from './tools.js'

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

async function databasesToDump({ sql, config }: Context): Promise<string[]> {
  if (config.backupDatabases.length > 0) return config.backupDatabases
  const [own] = await sql<{ name: string }[]>`select current_database() as name`
  return [own?.name as string]
}

interface SetPlan {
  dir: string
  relative: string
  recipients: string[] | null
  keyFor: (file: string) => string | null
}

/** Dumps every database, then the roles, into a fresh set directory; returns the files, not yet recorded. */
async function dumpSet(ctx: Context, set: SetPlan): Promise<NewBackup[]> {
  const { config, sql, signal, runId, log } = ctx
  const conn = parseDatabaseUrl(config.databaseUrl as string)
  const server = await serverVersion(sql)
  const pgDump = await locateTool('pg_dump', server, { binDir: config.backupPgBinDir })
  const format = backupFormat(config)
  const suffix = set.recipients ? '.age' : ''
  const taken = new Set<string>([GLOBALS_FILE])
  const files: NewBackup[] = []
  const databases = await databasesToDump(ctx)
  const estimatedBytes = await estimateBytes(sql, log, databases)
  log.info('backup started', { kind: ctx.args.type, set: set.relative, databases, format, estimatedBytes })
  log.info('using pg_dump', { path: pgDump.path, version: pgDump.version, server: server.text })
  if (set.recipients) log.info('encrypting with age', { recipients: set.recipients.length })
  else log.info('not encrypting: no age recipients configured')
  const progress = bytesProgress(ctx.progress, estimatedBytes)
  progress.writing(0)
  const record = (scope: NewBackup['scope'], database: string, name: string, fileFormat: BackupFormat) => {
    const file = `${set.relative}/${name}`
    const base = { kind: ctx.args.type, scope, database, file, setDir: set.relative, format: fileFormat }
    return { ...base, encrypted: set.recipients !== null, remoteKey: set.keyFor(file) }
  }
  for (const database of databases) {
    signal.throwIfAborted()
    const name = fileNameFor(database, format, taken) + suffix
    const started = Date.now()
    log.info('dumping database', { database, file: `${set.relative}/${name}` })
    const dump = await dumpToFile({
      pgDump,
      args: pgDumpArgs(format),
      env: connectionEnv(conn, database),
      file: path.join(set.dir, name),
      runId,
      signal,
      recipients: set.recipients ?? undefined,
      onBytes: progress.writing,
    })
    progress.wrote(dump.bytes)
    logToolOutput(log, 'pg_dump', dump.stderr, { database })
    const { bytes, sha256 } = dump
    const seconds = (Date.now() - started) / 1000
    log.info('database dumped', { database, bytes, sha256, seconds, encrypted: set.recipients !== null })
    files.push({ ...record('database', database, name, format), bytes, sha256 })
  }
  // Roles are the server's: read through Steward's own database, which exists whatever is listed.
  const [own] = await sql<{ name: string }[]>`select current_database() as name`
  const home = own?.name as string
  const globals = await dumpGlobals(ctx, set, conn, home)
  progress.wrote(globals.bytes)
  files.push({ ...record('globals', home, GLOBALS_FILE + suffix, 'plain'), ...globals })
  // The files' names, and the set directory's own entry, must survive a power cut too.
  await fsyncDir(set.dir)
  await fsyncDir(path.dirname(set.dir))
  progress.finish()
  return files
}

const GLOBALS_FILE = 'globals.sql'

/**
 * The server's roles and tablespaces (pg_dumpall --globals-only), so a restore onto a new server
 * finds the owners and grantees its dumps name. Role passwords are left out when this role may
 * not read them (only superusers can), rather than failing the set.
 */
async function dumpGlobals(ctx: Context, set: SetPlan, conn: Connection, database: string) {
  const { config, sql, signal, runId, log } = ctx
  const pgDumpall = await locateTool('pg_dumpall', await serverVersion(sql), {
    binDir: config.backupPgBinDir,
  })
  const [role] = await sql<{ superuser: boolean }[]>`
    select rolsuper as superuser from pg_roles where rolname = current_user`
  const args = ['--no-password', '--globals-only', `--database=${database}`]
  if (!role?.superuser) args.push('--no-role-passwords')
  const dump = await dumpToFile({
    pgDump: pgDumpall,
    args,
    env: connectionEnv(conn, database),
    file: path.join(set.dir, GLOBALS_FILE + (set.recipients ? '.age' : '')),
    runId,
    signal,
    recipients: set.recipients ?? undefined,
  })
  logToolOutput(log, 'pg_dumpall', dump.stderr, {})
  const { bytes, sha256 } = dump
  log.info('roles dumped', { bytes, sha256, rolePasswords: role?.superuser === true })
  return { bytes, sha256 }
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
  if (recorded) {
    ctx.log.warn('the failed set may have been recorded; its files are kept', { set: relative })
    return
  }
  await removeSetDir(ctx.config.backupDir, relative).then(
    () => ctx.log.info('removed the files of the failed set', { set: relative }),
    (err) => ctx.log.error('could not remove the files of a failed backup set', { err, set: relative }),
  )
}

/** Retention runs only after a successful set; its own failure is reported, not retried as a backup. */
async function retain(ctx: Context, store: BackupStore) {
  try {
    const removedSets = await applyLocalRetention(store, ctx.config)
    if (removedSets.length > 0) ctx.log.info('old backup sets removed from BACKUP_DIR', { removedSets })
    await sweepBackupDir(ctx.sql, ctx.config, ctx.log, ctx.runId)
    return { removedSets }
  } catch (err) {
    ctx.log.error('backup retention failed', { err })
    return { removedSets: [], error: String((err as Error).message ?? err) }
  }
}

/**
 * Uploads every file still waiting (oldest first, this set's last), then applies off-site
 * retention. Returns what happened, or throws upload_failed when this set could not be uploaded.
 */
async function shipOffsite(ctx: Context, offsite: Offsite, set: StoredBackup[]) {
  const report = await offsite.uploadPending({ wait: true, signal: ctx.signal })
  const mine = new Set(set.map((b) => b.id))
  const uploaded = report.uploaded.filter((id) => mine.has(id)).length
  if (uploaded < set.length) {
    const why = report.failed?.error ?? 'an earlier file is still waiting for its upload'
    throw new BackupError(
      'upload_failed',
      `the set was written and kept in BACKUP_DIR, but its off-site copy failed: ${why}; ` +
        'it is uploaded by the next run or at start-up',
    )
  }
  ctx.log.info('set uploaded off-site', { files: uploaded, earlier: report.uploaded.length - uploaded })
  const removedSets = await offsite.applyRemoteRetention().then(
    (removed) => {
      if (removed.length > 0) ctx.log.info('old sets removed off-site', { removedSets: removed })
      return removed
    },
    (err: Error) => {
      ctx.log.error('off-site retention failed', { err })
      return { error: err.message }
    },
  )
  return { uploaded: report.uploaded.length, earlier: report.uploaded.length - uploaded, removedSets }
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
  // A new hourly or daily set pushes the oldest of its kind out through retention: an admin's call.
  triggerAction: (args) => (args.type === 'manual' ? 'backup.manual' : 'backup.rotating'),
  async run(ctx) {
    const { config, sql, log, runId, signal } = ctx
    const store = createBackupStore(sql, config)
    const offsite = createOffsite({ sql, store, config, log })
    const recipients = await loadRecipients(config)
    const setDir = await createSetDir(config.backupDir, ctx.args.type, new Date(), runId, store.hasSet)
    let recorded: StoredBackup[]
    try {
      const files = await dumpSet(ctx, { ...setDir, recipients, keyFor: offsite.keyFor })
      recorded = await store.recordSet(files, runId, signal)
    } catch (err) {
      log.warn('backup set failed', { set: setDir.relative, err })
      await discardSet(ctx, setDir.relative)
      throw err
    }
    const bytes = recorded.reduce((sum, b) => sum + b.bytes, 0)
    log.info('backup set recorded', { set: setDir.relative, files: recorded.length, bytes })
    const anomalies = await flagAnomalies(store, recorded).catch((err: Error) => {
      log.error('could not check the set for size anomalies', { err })
      return []
    })
    for (const anomaly of anomalies) log.warn('backup size anomaly', { ...anomaly })
    const retention = await retain(ctx, store)
    const offsiteReport = offsite.remote ? await shipOffsite(ctx, offsite, recorded) : null
    return {
      kind: ctx.args.type,
      set: setDir.relative,
      bytes,
      encrypted: recipients !== null,
      backups: recorded.map((b) => ({
        id: b.id,
        scope: b.scope,
        database: b.database,
        file: b.file,
        bytes: b.bytes,
        sha256: b.sha256,
      })),
      retention,
      ...(offsiteReport ? { offsite: offsiteReport } : {}),
      ...(anomalies.length > 0
        ? {
            warnings: anomalies.map(
              (a) =>
                `${a.file}: ${a.bytes} bytes, ${a.reason} than the median of its previous sets (${a.medianBytes})`,
            ),
            anomalies,
          }
        : {}),
    }
  },
})
