// Off-site copies (BACKUP_REMOTE_URL): every recorded file is uploaded to
// <prefix>/<kind>/backup_YYYYMMDD_HHMMSS/<file>, oldest first, by the run that wrote it, by later
// runs and at start-up; one instance uploads at a time (a session advisory lock), so instances
// never race for the same object. Integrity (size and sha256) is checked by the remote store.
// After uploads, off-site retention keeps BACKUP_REMOTE_KEEP_{HOURLY,DAILY,WEEKLY,MONTHLY} sets.
import type { ReservedSql, Sql } from 'postgres'
import type { Config } from '../../../config.js'
import type { RunLogger } from '../../../engine/job.js'
import { resolveInside } from '../files.js'
import { retained } from '../gfs.js'
import { byKind } from '../retention.js'
import type { StoredBackup } from '../schemas.js'
import type { BackupStore } from '../store.js'
import { describeRemoteError, RemoteError, remoteReason } from './remote-errors.js'
import { createRemoteStore, type RemoteStore } from './remote-store.js'

const UPLOAD_LOCK = "hashtext('steward.backups.upload')"

/** One remote store per configuration (and so per app), created on first use. */
const stores = new WeakMap<Config, RemoteStore>()

export function remoteStoreFor(config: Config): RemoteStore | null {
  if (!config.backupRemoteUrl) return null
  let store = stores.get(config)
  if (!store) {
    store = createRemoteStore({
      url: config.backupRemoteUrl,
      forcePathStyle: config.backupRemoteForcePathStyle,
    })
    stores.set(config, store)
  }
  return store
}

export interface UploadReport {
  uploaded: number[]
  /** The first failure; later files wait for the next attempt, so uploads stay oldest first. */
  failed: { id: number; error: string } | null
  /** Another instance holds the upload lock (only when not waiting for it). */
  busy: boolean
}

export interface OffsiteDeps {
  sql: Sql
  store: BackupStore
  config: Config
  /** The run's log in a backup run; the process log's adapter (pinoRunLogger) elsewhere. */
  log: RunLogger
}

export function createOffsite({ sql, store, config, log }: OffsiteDeps) {
  const remote = remoteStoreFor(config)

  async function uploadOne(backup: StoredBackup, signal?: AbortSignal): Promise<void> {
    if (!remote || !backup.remote) return
    const file = await resolveInside(config.backupDir, backup.file)
    const { key } = backup.remote
    log.info('uploading off-site', { backupId: backup.id, file: backup.file, key, bytes: backup.bytes })
    const started = Date.now()
    await remote.upload(key, file, { bytes: backup.bytes, sha256: backup.sha256, signal })
    await store.markUploaded(backup.id)
    const seconds = (Date.now() - started) / 1000
    log.info('uploaded off-site', { backupId: backup.id, key, bytes: backup.bytes, seconds })
  }

  /** Takes the upload lock: waited for (and said so) when `wait`, else false when another holds it. */
  async function lockUploads(conn: ReservedSql, wait: boolean, signal?: AbortSignal): Promise<boolean> {
    const [row] = await conn<
      { locked: boolean }[]
    >`select pg_try_advisory_lock(${conn.unsafe(UPLOAD_LOCK)}) as locked`
    if (row?.locked) return true
    if (!wait) return false
    log.info('waiting for another off-site upload to finish')
    const locking = conn`select pg_advisory_lock(${conn.unsafe(UPLOAD_LOCK)})`
    const cancel = () => void locking.cancel()
    signal?.addEventListener('abort', cancel, { once: true })
    await locking.finally(() => signal?.removeEventListener('abort', cancel))
    return true
  }

  return {
    remote,

    /** The object key of a file: the local layout under the remote prefix. */
    keyFor: (file: string): string | null => (remote ? remote.keyFor(file) : null),

    /**
     * Uploads every file still waiting, oldest first, under the cluster-wide upload lock: waited
     * for when `wait` (a backup run, cancellable through its signal), else skipped when busy.
     */
    async uploadPending({ wait, signal }: { wait: boolean; signal?: AbortSignal }): Promise<UploadReport> {
      const report: UploadReport = { uploaded: [], failed: null, busy: false }
      if (!remote) return report
      const conn = await sql.reserve()
      try {
        if (!(await lockUploads(conn, wait, signal))) return { ...report, busy: true }
        try {
          const waiting = await store.awaitingUpload()
          if (waiting.length > 0) {
            const bytes = waiting.reduce((sum, b) => sum + b.bytes, 0)
            log.info('uploading files off-site', { files: waiting.length, bytes })
          }
          for (const backup of waiting) {
            signal?.throwIfAborted()
            try {
              await uploadOne(backup, signal)
              report.uploaded.push(backup.id)
            } catch (err) {
              if (signal?.aborted) throw err
              const error = err instanceof RemoteError ? err.message : describeRemoteError(err, remote.bucket)
              await store.markUploadFailed(backup.id, error)
              log.warn('off-site upload failed', { backupId: backup.id, reason: remoteReason(err), error })
              report.failed = { id: backup.id, error }
              break
            }
          }
        } finally {
          await conn`select pg_advisory_unlock(${conn.unsafe(UPLOAD_LOCK)})`.catch(() => {})
        }
      } finally {
        conn.release()
      }
      return report
    },

    /** Deletes the off-site sets retention no longer keeps (only fully uploaded sets count). */
    async applyRemoteRetention(): Promise<string[]> {
      if (!remote) return []
      const uploaded = (await store.sets()).filter((set) => set.uploaded)
      const keep = retained(
        uploaded.map((set) => ({ id: set.setDir, kind: set.kind, createdAt: set.createdAt })),
        config.backupRemoteKeep,
      )
      const retire = uploaded.filter((set) => !keep.has(set.setDir))
      for (const [kind, setDirs] of byKind(retire)) {
        for (const setDir of setDirs) {
          // Objects first: a crash in between leaves a row whose copy is gone, found by the next pass.
          await remote.deletePrefix(remote.keyFor(setDir))
          await store.dropRemote(kind, { setDirs: [setDir] })
        }
      }
      return retire.map((set) => set.setDir)
    },

    /** Deletes one file's off-site copy and forgets it (the row goes too when no local copy is left). */
    async deleteRemote(backup: StoredBackup): Promise<void> {
      if (!backup.remote) return
      if (!remote) throw new Error('BACKUP_REMOTE_URL is not set: the off-site copy cannot be deleted here')
      await remote.delete(backup.remote.key)
      await store.dropRemote(backup.kind, { id: backup.id })
    },
  }
}

export type Offsite = ReturnType<typeof createOffsite>
