// backup-verify: the restore drill. Restore-checks the newest backup of each database (and the roles
// file of the newest set) with the same check as POST /backups/{id}/verify: the local file, else its
// off-site copy; decrypted with BACKUP_AGE_IDENTITY_FILE, or checked by size and sha256 only without
// it (said so per database). Every verdict is recorded on its backup (verifiedAt, verifyResult).
// Rules it keeps:
// - a drill that finds any backup not restorable fails with code drill_failed (not retryable: a
//   broken file does not mend itself), naming each database and why; monitoring alerts on that code;
// - a drill that cannot check here at all (no client tools, no scratch database) fails the same way;
// - nothing to drill yet (no backup recorded) is a success with a note, not an alarm: the backup
//   schedules' own health and failures say why there are none;
// - one database at a time: each check restores into its own scratch database;
// - it shares the cluster-wide cap on restore checks (BACKUP_VERIFY_CONCURRENCY) with
//   POST /backups/{id}/verify: it waits for a free slot (said in its log) and holds it to the end;
// - a backup whose only copy is a local file on another host (BACKUP_HOST) cannot be checked here:
//   a failed entry (file_elsewhere), not recorded on the backup.
// Each step of each check is a line of the run's log; progress counts the backups checked.
import { Type } from 'typebox'
import { defineJob, type JobContext } from '../../engine/job.js'
import { isDatabaseDown } from '../../lib/errors.js'
import { remoteStoreFor } from './offsite/offsite.js'
import { VerifyUnavailable } from './restore/sandbox.js'
import { type VerifyDeps, verifyBackup } from './restore/verify.js'
import { withVerifySlot } from './restore/verify-slots.js'
import type { StoredBackup, VerifyResult } from './schemas.js'
import { type BackupStore, createBackupStore } from './store.js'
import { BackupError } from './tools.js'

const DrillArgs = Type.Object(
  {
    database: Type.Optional(
      Type.String({ minLength: 1, description: 'Drill only this database (default: every database).' }),
    ),
  },
  { additionalProperties: false },
)

type Context = JobContext<{ database?: string }>

/** What the drill found for one file; `error` says why it is not ok. */
export interface DrillEntry {
  database: string
  scope: StoredBackup['scope']
  backupId: number
  file: string
  kind: StoredBackup['kind']
  createdAt: string
  ok: boolean
  source?: 'local' | 'remote'
  restoreSeconds?: number
  tables?: number
  rows?: number
  restoreSkipped?: string
  error?: { code: string; message: string }
}

/** Why a check that restored is still not ok: the tables or row counts differ from the dump. */
function describeMismatch(result: VerifyResult): string {
  const parts: string[] = []
  if (result.missingTables?.length) parts.push(`missing tables ${result.missingTables.join(', ')}`)
  if (result.extraTables?.length) parts.push(`unexpected tables ${result.extraTables.join(', ')}`)
  for (const m of result.countMismatches ?? [])
    parts.push(`${m.table}: ${m.restored} rows restored, ${m.dump} in the dump`)
  return parts.join('; ') || 'the restore check did not pass'
}

function toEntry(backup: StoredBackup, result: VerifyResult): DrillEntry {
  const error =
    result.error ?? (result.ok ? undefined : { code: 'contents_mismatch', message: describeMismatch(result) })
  return {
    ...describe(backup),
    ok: result.ok,
    source: result.source,
    restoreSeconds: result.durationMs / 1000,
    tables: result.tables,
    rows: result.rows,
    restoreSkipped: result.restoreSkipped,
    error,
  }
}

const describe = (b: StoredBackup) => ({
  database: b.database,
  scope: b.scope,
  backupId: b.id,
  file: b.file,
  kind: b.kind,
  createdAt: b.createdAt,
})

/**
 * Checks one backup and records the verdict on it. An error that is no verdict on the file (the
 * object store unreachable, an unreadable identity file) makes a failed entry without a record; a
 * lost database, a cancel or a check impossible here stop the drill.
 */
async function drillOne(deps: VerifyDeps, store: BackupStore, backup: StoredBackup, ctx: Context) {
  let result: VerifyResult
  try {
    result = await verifyBackup(deps, backup)
  } catch (err) {
    if (deps.signal.aborted || err instanceof VerifyUnavailable || isDatabaseDown(err)) throw err
    const code = (err as { code?: unknown }).code
    const error = {
      code: typeof code === 'string' ? code : 'check_error',
      message: String((err as Error).message),
    }
    ctx.log.warn('could not check the backup', { backupId: backup.id, database: backup.database, error })
    return { ...describe(backup), ok: false, error }
  }
  const recorded = await store.setVerified(backup.id, result)
  const entry = toEntry(backup, result)
  const { database, ok, source, tables, rows, restoreSkipped, error } = entry
  const fields = { backupId: backup.id, database, ok, source, seconds: entry.restoreSeconds, tables, rows }
  if (ok) ctx.log.info('backup checked', { ...fields, restoreSkipped })
  else ctx.log.warn('backup did not pass the check', { ...fields, error })
  // Deleted meanwhile (an operator, or retention of its set): nothing left to vouch for or against.
  if (!recorded) return { ...entry, ok: true, error: undefined, restoreSkipped: 'deleted during the check' }
  return entry
}

/** The newest database files to drill (one per database), and the roles file of the newest set. */
async function targets(ctx: Context, store: BackupStore): Promise<StoredBackup[]> {
  const newest = await store.newestPerDatabase()
  const { database } = ctx.args
  if (database === undefined) {
    const globals = await store.newestGlobals()
    return globals ? [...newest, globals] : newest
  }
  const one = newest.filter((b) => b.database === database)
  if (one.length === 0)
    throw new BackupError('no_backup', `no backup of database "${database}" to drill`, false)
  return one
}

/** Databases BACKUP_DATABASES (or the default, the server's own) names that have no backup at all. */
async function notBackedUp(ctx: Context, drilled: StoredBackup[]): Promise<string[]> {
  if (ctx.args.database !== undefined) return []
  let expected = ctx.config.backupDatabases
  if (expected.length === 0) {
    const [own] = await ctx.sql<{ name: string }[]>`select current_database() as name`
    expected = [own?.name as string]
  }
  const have = new Set(drilled.map((b) => b.database))
  return expected.filter((name) => !have.has(name))
}

function failureMessage(failed: DrillEntry[], total: number): string {
  const lines = failed.map((e) => {
    const what = e.scope === 'globals' ? 'roles (globals)' : e.database
    return `${what} (backup ${e.backupId}, ${e.file}): ${e.error?.code}: ${e.error?.message}`
  })
  return `${failed.length} of ${total} file(s) did not pass the restore check: ${lines.join('; ')}`
}

/** Checks each backup in turn, holding one restore-check slot throughout (waited for when busy). */
async function drillAll(ctx: Context, deps: VerifyDeps, store: BackupStore, list: StoredBackup[]) {
  const { sql, config, signal } = ctx
  const onWait = () => ctx.log.info('waiting for another restore check to finish (BACKUP_VERIFY_CONCURRENCY)')
  return await withVerifySlot(
    sql,
    { limit: config.backupVerifyConcurrency, wait: { signal, onWait } },
    async () => {
      const entries: DrillEntry[] = []
      ctx.progress({ done: 0, total: list.length, unit: 'backups' })
      for (const backup of list) {
        signal.throwIfAborted()
        const { id: backupId, database, scope, file } = backup
        ctx.log.info('checking backup', { backupId, database, scope, file })
        try {
          entries.push(await drillOne(deps, store, backup, ctx))
        } catch (err) {
          if (!(err instanceof VerifyUnavailable) || signal.aborted) throw err
          throw new BackupError('drill_failed', `cannot restore-check backups here: ${err.message}`, false)
        }
        ctx.progress({ done: entries.length, total: list.length, unit: 'backups' })
      }
      return entries
    },
  )
}

export const backupVerify = defineJob({
  name: 'backup-verify',
  description:
    'Restore drill: restores the newest backup of each database (from the off-site copy when the local ' +
    'file is gone) into a scratch database and compares its tables and row counts with the dump, and ' +
    'checks the roles file of the newest set; records the outcome on each backup. Fails (drill_failed) ' +
    'when any of them does not pass.',
  args: DrillArgs,
  timeoutMs: 2 * 3600_000,
  maxAttempts: 1,
  schedules: [{ name: 'backup-drill', cron: '0 6 * * 0' }],
  async run(ctx) {
    const { sql, config, signal } = ctx
    const store = createBackupStore(sql, config)
    const list = await targets(ctx, store)
    const missing = await notBackedUp(ctx, list)
    if (missing.length > 0) ctx.log.warn('databases without a backup', { databases: missing })
    if (list.length === 0) ctx.log.info('no backups recorded yet: nothing to drill')
    else
      ctx.log.info('restore drill started', { backups: list.length, databases: list.map((b) => b.database) })
    const deps: VerifyDeps = { sql, config, signal, remote: remoteStoreFor(config), log: ctx.log }
    const entries = list.length === 0 ? [] : await drillAll(ctx, deps, store, list)
    const failed = entries.filter((e) => !e.ok)
    ctx.log.info('restore drill finished', { checked: entries.length, failed: failed.length })
    if (failed.length > 0)
      throw new BackupError('drill_failed', failureMessage(failed, entries.length), false)
    return {
      databases: entries.filter((e) => e.scope === 'database'),
      globals: entries.find((e) => e.scope === 'globals') ?? null,
      ...(list.length === 0 ? { note: 'no backups recorded yet: nothing to drill' } : {}),
      ...(missing.length > 0 ? { notBackedUp: missing } : {}),
    }
  },
})
