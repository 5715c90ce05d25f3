// What the /backups routes do, over the store, the off-site copies and the restore check: list and
// read, open a copy for download, delete (both copies, or one), verify. Created once by the plugin.
// A local file on another host (BACKUP_HOST) is never touched from here: reads go to the off-site
// copy, and deleting it is refused (409) so that no row is removed while its file lives on.
import type { Sql } from 'postgres'
import type { Config } from '../../config.js'
import type { RunLogger } from '../../engine/job.js'
import { Conflict, NotFound } from '../../lib/errors.js'
import { type BackupReader, type CopyChoice, openBackup } from './download.js'
import { FileElsewhere, isLocalHere } from './files.js'
import { createOffsite } from './offsite/offsite.js'
import { VerifyUnavailable } from './restore/sandbox.js'
import { verifyBackup } from './restore/verify.js'
import { withVerifySlot } from './restore/verify-slots.js'
import type { Backup, StoredBackup } from './schemas.js'
import { createBackupStore, toBackup } from './store.js'

export function createBackupsService(sql: Sql, config: Config, log?: RunLogger) {
  const store = createBackupStore(sql, config)
  const offsite = log ? createOffsite({ sql, store, config, log }) : null

  async function find(id: number): Promise<StoredBackup> {
    const backup = await store.get(id)
    if (!backup) throw new NotFound(`backup ${id} does not exist`)
    return backup
  }

  return {
    store,
    offsite,
    get: store.get,
    list: store.list,

    /**
     * Deletes a backup: both copies (the row, then the files), or only one of them. The last copy
     * of a backup takes its row with it.
     */
    async remove(id: number, copy?: 'local' | 'remote'): Promise<Backup> {
      const backup = await find(id)
      // Refused before either copy is touched: a delete is never left half done.
      if (copy !== 'remote' && backup.local && !isLocalHere(backup, config.backupHost))
        throw new FileElsewhere(
          backup,
          'delete it through an instance there (its off-site copy alone goes with ?copy=remote)',
        )
      if (copy !== 'local' && backup.remote) {
        if (!offsite?.remote)
          throw new Conflict('BACKUP_REMOTE_URL is not set here: the off-site copy cannot be deleted')
        await offsite.deleteRemote(backup)
      } else if (copy === 'remote') {
        throw new NotFound(`backup ${id} has no off-site copy`)
      }
      if (copy !== 'remote') {
        if (!backup.local && copy === 'local') throw new NotFound(`backup ${id} has no local copy`)
        if (backup.local) {
          // A local copy whose off-site one is still needed stays listed: dropLocal keeps the row.
          const removed = await store.dropLocal(backup.kind, { id })
          if (removed === 0 && copy === 'local') throw new NotFound(`backup ${id} has no local copy`)
        }
      }
      return toBackup(backup)
    },

    /** The backup and an open copy of its file; the caller streams or closes it. */
    async open(id: number, choice?: CopyChoice): Promise<{ backup: StoredBackup; reader: BackupReader }> {
      const backup = await find(id)
      const place = { backupDir: config.backupDir, host: config.backupHost }
      return { backup, reader: await openBackup(place, backup, offsite?.remote ?? null, choice) }
    },

    /**
     * Restores a backup into a scratch database, records the outcome on its row and returns it. 409
     * at once when BACKUP_VERIFY_CONCURRENCY checks are already running anywhere in the cluster.
     */
    async verify(id: number, signal: AbortSignal): Promise<StoredBackup> {
      const backup = await find(id)
      try {
        const result = await withVerifySlot(sql, { limit: config.backupVerifyConcurrency }, () =>
          verifyBackup({ sql, config, signal, remote: offsite?.remote ?? null }, backup),
        )
        log?.info('backup verified', { backupId: id, ok: result.ok, durationMs: result.durationMs })
        const verified = await store.setVerified(id, result)
        if (!verified) throw new NotFound(`backup ${id} was deleted while it was being verified`)
        return verified
      } catch (err) {
        if (err instanceof VerifyUnavailable) throw new Conflict(`cannot verify here: ${err.message}`)
        throw err
      }
    },
  }
}

export type BackupsService = ReturnType<typeof createBackupsService>
