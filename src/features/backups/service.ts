// What the /backups routes do, over the store, the off-site copies and the restore check: list and
// read, open a copy for download, delete (both copies, or one), verify. Created once by the plugin.
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { Config } from '../../config.js'
import { Conflict, NotFound } from '../../lib/errors.js'
import { type BackupReader, type CopyChoice, openBackup } from './download.js'
import { createOffsite } from './offsite/offsite.js'
import { VerifyUnavailable, verifyBackup } from './restore/verify.js'
import type { Backup, StoredBackup } from './schemas.js'
import { createBackupStore, toBackup } from './store.js'

export function createBackupsService(sql: Sql, config: Config, log?: FastifyBaseLogger) {
  const store = createBackupStore(sql, config)
  const offsite = log ? createOffsite({ sql, store, config, log }) : null
  const verifying = new Set<number>()

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
      return { backup, reader: await openBackup(config.backupDir, backup, offsite?.remote ?? null, choice) }
    },

    /** Restores a backup into a scratch database, records the outcome on its row and returns it. */
    async verify(id: number, signal: AbortSignal): Promise<StoredBackup> {
      const backup = await find(id)
      if (verifying.has(id)) throw new Conflict(`backup ${id} is already being verified`)
      verifying.add(id)
      try {
        const result = await verifyBackup({ sql, config, signal, remote: offsite?.remote ?? null }, backup)
        log?.info({ backupId: id, ok: result.ok, durationMs: result.durationMs }, 'backup verified')
        const verified = await store.setVerified(id, result)
        if (!verified) throw new NotFound(`backup ${id} was deleted while it was being verified`)
        return verified
      } catch (err) {
        if (err instanceof VerifyUnavailable) throw new Conflict(`cannot verify here: ${err.message}`)
        throw err
      } finally {
        verifying.delete(id)
      }
    },
  }
}

export type BackupsService = ReturnType<typeof createBackupsService>
