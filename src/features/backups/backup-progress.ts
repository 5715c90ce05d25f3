// What a database-backup run shows whoever watches it: its progress in bytes stored, counted
// against the size of the databases it dumps, and the dump tools' warnings, a log line each.
import type { Sql } from 'postgres'
import type { LogFields, ProgressReport, RunLogger } from '../../engine/job.js'

/**
 * What the databases take on disk (pg_database_size), as the estimate of the dumps' bytes; null
 * when it cannot be read (no CONNECT right on one of them). Only an estimate: a dump has no index
 * pages and no free space, and gzip, custom and age change its size again.
 */
export async function estimateBytes(sql: Sql, log: RunLogger, databases: string[]): Promise<number | null> {
  return await sql<{ bytes: number | null }[]>`
    select sum(pg_database_size(oid))::float8 as bytes from pg_database where datname = any(${databases})`.then(
    ([row]) => row?.bytes ?? null,
    (err: Error) => {
      log.warn('could not estimate the size of the databases; progress has no total', { err })
      return null
    },
  )
}

/** Progress in bytes stored: the files done so far, and the one being written. */
export function bytesProgress(progress: (report: ProgressReport) => void, total: number | null) {
  let stored = 0
  return {
    /** pg_dump's output so far, for the file being written (DumpSpec.onBytes). */
    writing: (written: number) => progress({ done: stored + written, total, unit: 'bytes' }),
    wrote: (bytes: number) => {
      stored += bytes
      progress({ done: stored, total, unit: 'bytes' })
    },
    /** The set is written: its real size replaces the estimate. */
    finish: () => progress({ done: stored, total: stored, unit: 'bytes' }),
  }
}

/** A tool's stderr, a warning line each, prefixed with the tool's name as pg_dump prefixes its own. */
export function logToolOutput(log: RunLogger, tool: string, stderr: string, fields: LogFields): void {
  for (const line of stderr.split('\n')) {
    const text = line.trim()
    if (text) log.warn(text.startsWith(`${tool}:`) ? text : `${tool}: ${text}`, fields)
  }
}
