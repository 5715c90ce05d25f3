// A backup file as a local path for the tools that need one (psql, pg_restore): the file in
// BACKUP_DIR when it is on this host, else its off-site copy downloaded into BACKUP_DIR/.restore-tmp;
// and its plaintext, decrypted into the same place when the file is age-encrypted. Temporary files
// are 0600 and removed when the work is done, whatever happens. A file on another host (BACKUP_HOST)
// with no off-site copy to read is a FileElsewhere (409), never "missing".
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { NotFound } from '../../../lib/errors.js'
import { decryptStream } from '../encryption.js'
import { FileElsewhere, isLocalHere, resolveInside } from '../files.js'
import type { RemoteStore } from '../offsite/remote-store.js'
import type { StoredBackup } from '../schemas.js'

export const RESTORE_TMP = '.restore-tmp'

/** Size and sha256 of a file, read 1 MiB at a time; stops when the signal aborts. */
export async function hashFile(
  file: string,
  signal: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    signal.throwIfAborted()
    hash.update(chunk)
    bytes += chunk.length
  }
  return { sha256: hash.digest('hex'), bytes }
}

export interface FetchOptions {
  backupDir: string
  /** BACKUP_HOST: a local file recorded by another host is not read here. */
  host: string
  remote: RemoteStore | null
  signal: AbortSignal
  /** remote: use the off-site copy even when the local file is there. */
  source?: 'local' | 'remote'
}

async function tempFile(backupDir: string, label: string): Promise<string> {
  const dir = path.join(backupDir, RESTORE_TMP)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  return path.join(dir, `${label}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
}

async function removing<T>(file: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } finally {
    await fs.rm(file, { force: true })
  }
}

/** Runs `work` on a local path holding the stored bytes of the backup; says which copy it is. */
export async function withStoredFile<T>(
  backup: StoredBackup,
  options: FetchOptions,
  work: (file: string, source: 'local' | 'remote') => Promise<T>,
): Promise<T> {
  if (isLocalHere(backup, options.host) && options.source !== 'remote') {
    return await work(await resolveInside(options.backupDir, backup.file), 'local')
  }
  const key = backup.remote?.state === 'uploaded' ? backup.remote.key : null
  const remote = options.remote
  // A file on another host is not missing: it is no verdict on the backup, only not readable here.
  if (backup.local && (!key || !remote) && options.source !== 'remote')
    throw new FileElsewhere(backup, key ? 'and BACKUP_REMOTE_URL is not set here' : 'it has no off-site copy')
  if (!key)
    throw new NotFound(`backup ${backup.id} has no copy to read (no local file, no uploaded off-site copy)`)
  if (!remote) throw new NotFound(`backup ${backup.id} is only off-site, and no BACKUP_REMOTE_URL is set`)
  return await withDownload(remote, key, options.backupDir, options.signal, (file) => work(file, 'remote'))
}

/** Runs `work` on a temporary copy of an off-site object, in `scratchDir`/.restore-tmp. */
export async function withDownload<T>(
  remote: RemoteStore,
  key: string,
  scratchDir: string,
  signal: AbortSignal,
  work: (file: string) => Promise<T>,
): Promise<T> {
  const file = await tempFile(scratchDir, 'download')
  return await removing(file, async () => {
    const { stream } = await remote.download(key)
    await pipeline(stream, createWriteStream(file, { mode: 0o600 }), { signal })
    return await work(file)
  })
}

/** Runs `work` on the plaintext of `file`: the file itself, or its decryption with `identities`. */
export async function withPlaintext<T>(
  file: string,
  encrypted: boolean,
  identities: string[],
  options: { backupDir: string; signal: AbortSignal },
  work: (plain: string) => Promise<T>,
): Promise<T> {
  if (!encrypted) return await work(file)
  const plain = await tempFile(options.backupDir, 'plain')
  return await removing(plain, async () => {
    await pipeline(
      createReadStream(file),
      decryptStream(identities),
      createWriteStream(plain, { mode: 0o600 }),
      {
        signal: options.signal,
      },
    )
    return await work(plain)
  })
}
