// One dump to one file: pg_dump's (or pg_dumpall's) stdout streamed to a temporary file beside the
// destination, age-encrypted on the way when recipients are configured (the plain dump never
// touches the disk), sha256 and size computed of the stored bytes, fsynced, then renamed into
// place. Whatever fails (the tool, the disk, the run's signal), the temporary file is removed and
// nothing else is touched.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { encryptStream } from './encryption.js'
import type { BackupFormat } from './files.js'
import { tempName } from './files.js'
import { startTool, toolFailure } from './process.js'
import { BackupError, type Tool } from './tools.js'

export interface DumpSpec {
  pgDump: Tool
  /** The tool's arguments; pgDumpArgs(format) for a database. */
  args: string[]
  env: NodeJS.ProcessEnv
  /** Final path; the temporary file goes next to it. */
  file: string
  runId: string
  signal: AbortSignal
  killGraceMs?: number
  /** age recipients: the file is encrypted before it touches the disk. */
  recipients?: string[]
  /** Told the bytes stored so far as they are written (often: once per chunk), for progress. */
  onBytes?: (written: number) => void
}

export interface DumpResult {
  bytes: number
  sha256: string
  /** pg_dump's warnings, if it printed any. */
  stderr: string
}

// Bigger writes than the 64 KiB pipe reads: fewer syscalls, and pg_dump never waits on the disk.
const WRITE_BUFFER = 4 * 1024 * 1024
// Written data is flushed to disk in the background every this many bytes while pg_dump is still
// producing, so the final fsync finds little left to write instead of the whole dump.
const FLUSH_EVERY = 64 * 1024 * 1024

/**
 * pg_dump's wait for each table lock. A dump queued behind a long exclusive lock (a migration, a
 * VACUUM FULL) fails after this and is retried later, instead of hanging until the run's timeout.
 */
const LOCK_WAIT_TIMEOUT = '60s'

/** pg_dump arguments: no connection details (they are in the environment), never a password. */
export function pgDumpArgs(format: BackupFormat): string[] {
  const args = [
    '--no-password',
    `--lock-wait-timeout=${LOCK_WAIT_TIMEOUT}`,
    format === 'custom' ? '--format=custom' : '--format=plain',
  ]
  // Plain output compressed by pg_dump itself (gzip), in its own process rather than ours.
  if (format === 'gzip') args.push('--compress=6')
  return args
}

export async function dumpToFile(spec: DumpSpec): Promise<DumpResult> {
  const temp = path.join(path.dirname(spec.file), tempName(path.basename(spec.file), spec.runId))
  const handle = await fs.open(temp, 'wx', 0o600)
  try {
    const result = await streamDump(spec, handle)
    spec.signal.throwIfAborted()
    await fs.rename(temp, spec.file)
    return result
  } catch (err) {
    await handle.close().catch(() => {})
    await fs.rm(temp, { force: true })
    throw err
  }
}

async function streamDump(spec: DumpSpec, handle: fs.FileHandle): Promise<DumpResult> {
  const proc = startTool(spec.pgDump, spec.args, {
    env: spec.env,
    signal: spec.signal,
    killGraceMs: spec.killGraceMs,
  })
  const hash = createHash('sha256')
  let bytes = 0
  let flushedAt = 0
  let flushing: Promise<void> | null = null
  let flushError: unknown = null
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk)
      bytes += chunk.length
      spec.onBytes?.(bytes)
      if (!flushing && bytes - flushedAt >= FLUSH_EVERY) {
        flushedAt = bytes
        // Kept, not retried: Linux reports a writeback error to one fsync only, so this may be the
        // only time it shows.
        flushing = handle
          .datasync()
          .catch((err) => {
            flushError ??= err
          })
          .finally(() => {
            flushing = null
          })
      }
      callback(null, chunk)
    },
  })
  let writeError: unknown = null
  try {
    // flush: fsync before the stream closes the file, so the pipeline ends with the data on disk.
    const sink = handle.createWriteStream({ flush: true, highWaterMark: WRITE_BUFFER })
    if (spec.recipients?.length) await pipeline(proc.stdout, encryptStream(spec.recipients), measure, sink)
    else await pipeline(proc.stdout, measure, sink)
  } catch (err) {
    // pg_dump would block on a full pipe forever; it must not outlive the failed write.
    writeError = err
    proc.child.kill('SIGKILL')
  }
  await flushing
  const exit = await proc.exited
  spec.signal.throwIfAborted()
  writeError ??= flushError
  if (writeError) throw writeFailure(writeError, spec.file, bytes)
  const failure = toolFailure(spec.pgDump, exit)
  if (failure) throw failure
  return { bytes, sha256: hash.digest('hex'), stderr: exit.stderr }
}

function writeFailure(err: unknown, file: string, bytes: number): Error {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BackupError(
      'disk_full',
      `no space left writing ${file} (after ${bytes} bytes): ${String(err)}`,
    )
  }
  return new BackupError('write_failed', `writing ${file} failed after ${bytes} bytes: ${String(err)}`)
}
