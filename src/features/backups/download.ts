// Serving a backup file: opening it by its row (never by a path from the request), from BACKUP_DIR
// or, when the local file is gone, on another host, or asked for, from its off-site copy; and the
// HTTP details of a download as plain functions: single byte ranges, ETag matching, the headers.
import fs from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { Conflict, NotFound } from '../../lib/errors.js'
import {
  type BackupFormat,
  EXTENSIONS,
  FileElsewhere,
  isLocalHere,
  PathEscape,
  resolveInside,
} from './files.js'
import { RemoteError } from './offsite/remote-errors.js'
import type { RemoteStore } from './offsite/remote-store.js'
import type { StoredBackup } from './schemas.js'

export interface OpenBackup {
  handle: fs.FileHandle
  size: number
}

/** An opened copy of a backup file; stream() hands the copy over (call it once, or close()). */
export interface BackupReader {
  source: 'local' | 'remote'
  size: number
  /** Bytes start..end, inclusive. */
  stream(start: number, end: number, highWaterMark?: number): Promise<Readable>
  close(): Promise<void>
}

export type CopyChoice = 'local' | 'remote' | undefined

/** This instance's BACKUP_DIR and BACKUP_HOST. */
export interface Place {
  backupDir: string
  host: string
}

/**
 * Opens the copy to read: the local file unless `choice` is remote or the local file is gone, then
 * the uploaded off-site copy. 404 when the chosen copy does not exist; 409 when the only copy is a
 * local file on another host.
 */
export async function openBackup(
  place: Place,
  backup: StoredBackup,
  remote: RemoteStore | null,
  choice: CopyChoice,
): Promise<BackupReader> {
  const uploaded = backup.remote?.state === 'uploaded' ? backup.remote.key : null
  const here = isLocalHere(backup, place.host)
  if (choice !== 'remote' && here) {
    const { handle, size } = await openBackupFile(place.backupDir, backup)
    return {
      source: 'local',
      size,
      stream: async (start, end, highWaterMark) => handle.createReadStream({ start, end, highWaterMark }),
      close: () => handle.close(),
    }
  }
  if (backup.local && !here) {
    // On another host: the off-site copy is the only one this instance can read.
    if (choice === 'local') throw new FileElsewhere(backup, 'download it from an instance there')
    if (!uploaded)
      throw new FileElsewhere(backup, 'it has no off-site copy; download it from an instance there')
    if (!remote)
      throw new FileElsewhere(backup, 'and BACKUP_REMOTE_URL is not set here to read its off-site copy')
  }
  if (choice === 'local') throw new NotFound(`backup ${backup.id} has no local copy (only off-site)`)
  if (!uploaded) throw new NotFound(`backup ${backup.id} has no uploaded off-site copy`)
  if (!remote)
    throw new Conflict(`backup ${backup.id} is only off-site, and BACKUP_REMOTE_URL is not set here`)
  return {
    source: 'remote',
    size: backup.bytes,
    stream: async (start, end) => {
      try {
        return (await remote.download(uploaded, { start, end })).stream
      } catch (err) {
        if (err instanceof RemoteError && err.reason === 'not_found')
          throw new NotFound(
            `the off-site copy of backup ${backup.id} (${uploaded}) is missing from the bucket`,
          )
        // The store failing is a bad gateway, not a bug here; its message says why.
        throw Object.assign(new Error(`the off-site copy could not be read: ${(err as Error).message}`), {
          statusCode: 502,
          expose: true,
        })
      }
    },
    close: async () => {},
  }
}

/**
 * Opens a backup's file. The size must still be the recorded one: ETag and Content-Length promise
 * the bytes that were checksummed, and a file that changed since is not served as if it were.
 */
export async function openBackupFile(backupDir: string, backup: StoredBackup): Promise<OpenBackup> {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(await resolveInside(backupDir, backup.file), 'r')
  } catch (err) {
    if (err instanceof PathEscape) throw new Conflict(`backup ${backup.id}: ${err.message}; it is not served`)
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFound(`the file of backup ${backup.id} (${backup.file}) is missing from BACKUP_DIR`)
    }
    throw err
  }
  const stat = await handle.stat()
  if (!stat.isFile() || stat.size !== backup.bytes) {
    await handle.close()
    throw new Conflict(
      `the file of backup ${backup.id} has ${stat.size} bytes on disk but ${backup.bytes} were recorded; ` +
        'verify or delete it',
    )
  }
  return { handle, size: stat.size }
}

export type RangeRequest =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' }

const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/

/**
 * A single `bytes=` range (RFC 9110 14.1.2): `a-b`, `a-` or `-n` (the last n bytes). Anything else,
 * including several ranges, is answered with the whole file, which the RFC allows.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  const match = header ? SINGLE_RANGE.exec(header.replace(/\s+/g, '')) : null
  if (!match) return { kind: 'full' }
  const [, first = '', last = ''] = match
  if (first === '' && last === '') return { kind: 'full' }
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Number(last)
  if (start >= size) return { kind: 'unsatisfiable' }
  if (end < start) return { kind: 'full' }
  return { kind: 'partial', start, end: Math.min(end, size - 1) }
}

export const etagOf = (backup: StoredBackup) => `"${backup.sha256}"`

/** If-None-Match: `*` or a list of tags, weak or strong (weak comparison, as RFC 9110 says). */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false
  if (header.trim() === '*') return true
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

/** If-Range: the range applies only while the file is still the one the client has part of. */
export function rangeStillValid(ifRange: string | undefined, etag: string): boolean {
  return ifRange === undefined || ifRange.trim() === etag
}

const CONTENT_TYPES: Record<BackupFormat, string> = {
  plain: 'application/sql',
  gzip: 'application/gzip',
  custom: 'application/octet-stream',
}

export const contentTypeOf = (backup: StoredBackup) =>
  backup.encrypted ? 'application/octet-stream' : CONTENT_TYPES[backup.format]

/** attachment; filename="<db>-<YYYYMMDD_HHMMSS>.sql", with an RFC 5987 form for non-ASCII names. */
export function contentDisposition(backup: StoredBackup): string {
  const stamp = /backup_(\d{8}_\d{6})/.exec(backup.setDir)?.[1] ?? String(backup.id)
  const who = backup.scope === 'globals' ? 'globals' : backup.database
  const name = `${who}-${stamp}${EXTENSIONS[backup.format]}${backup.encrypted ? '.age' : ''}`
  const ascii = name.replace(/[^\x20-\x7e]|["\\/;%]/g, '_')
  if (ascii === name) return `attachment; filename="${name}"`
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}
