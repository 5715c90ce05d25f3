// An example client of Steward's HTTP API, for integrators: it triggers a manual backup, follows the
// run to its end, finds the files the run made and downloads one, with openapi-fetch and the types
// generated from openapi.yaml (steward-api.d.ts), so a wrong path, parameter or field is a type error.
//
//   STEWARD_URL=http://127.0.0.1:3000 STEWARD_TOKEN=stw_… node --import tsx examples/client.ts [dir]
//
// The token needs the operator role (a manual backup and a download both do). `dir` defaults to the
// current directory.
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream } from 'node:stream/web'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import createClient, { type Client } from 'openapi-fetch'
import type { components, paths } from './steward-api.js'

type Run = components['schemas']['Run']
type Backup = components['schemas']['Backup']
type Steward = Client<paths>

export interface ClientOptions {
  /** Steward's address, e.g. http://127.0.0.1:3000. */
  url: string
  /** An API token with the operator role. */
  token: string
  /** The directory the downloaded file goes to (created if missing). */
  dir: string
  /** How long to follow the run before giving up (default 10 minutes). */
  timeoutMs?: number
  /** How long to wait between two looks at the run (default 1 s). */
  pollMs?: number
  /** Where progress lines go (default: standard output). */
  log?: (line: string) => void
}

export interface ClientResult {
  run: Run
  /** Every file the run made: one dump per database, and the set's globals.sql. */
  backups: Backup[]
  downloaded: { backup: Backup; file: string; bytes: number }
}

/** The states a run does not leave. */
const ENDED: ReadonlySet<Run['state']> = new Set(['succeeded', 'failed', 'cancelled', 'skipped'])

export async function main(options: ClientOptions): Promise<ClientResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`))
  const steward = createClient<paths>({
    baseUrl: options.url,
    headers: { authorization: `Bearer ${options.token}` },
  })

  // 202 with the run, queued; it goes on in the server whatever this client does next.
  const queued = ok(
    'POST /jobs/database-backup/runs',
    await steward.POST('/jobs/{name}/runs', {
      params: { path: { name: 'database-backup' } },
      body: { args: { type: 'manual' } },
    }),
  )
  log(`triggered database-backup: run ${queued.id}`)

  const run = await followRun(steward, queued.id, options, log)
  if (run.state !== 'succeeded') {
    // A failed attempt may be retried as a new run (trigger "retry", retryOf = this run's id).
    throw new Error(`run ${run.id} ended ${run.state}: ${run.error?.message ?? 'no error recorded'}`)
  }

  const backups = await backupsOf(steward, run)
  for (const b of backups) log(`backup ${b.id}: ${b.scope} ${b.database}, ${b.bytes} bytes, ${b.file}`)
  const backup = backups.find((b) => b.scope === 'database')
  if (!backup) throw new Error(`run ${run.id} succeeded but no database dump of it is listed`)

  const downloaded = await download(steward, backup, options.dir)
  log(`downloaded backup ${backup.id} to ${downloaded.file} (${downloaded.bytes} bytes, sha256 checked)`)
  return { run, backups, downloaded }
}

/** Polls GET /runs/{id} until the run has ended, or fails once `timeoutMs` has passed. */
async function followRun(
  steward: Steward,
  id: number,
  { timeoutMs = 10 * 60_000, pollMs = 1000 }: Pick<ClientOptions, 'timeoutMs' | 'pollMs'>,
  log: (line: string) => void,
): Promise<Run> {
  const deadline = Date.now() + timeoutMs
  let seen: Run['state'] | undefined
  for (;;) {
    const run = ok(`GET /runs/${id}`, await steward.GET('/runs/{id}', { params: { path: { id } } }))
    if (run.state !== seen) log(`run ${id}: ${run.state}`)
    seen = run.state
    if (ENDED.has(run.state)) return run
    if (Date.now() + pollMs > deadline)
      throw new Error(`run ${id} is still ${run.state} after ${timeoutMs} ms`)
    await sleep(pollMs)
  }
}

/**
 * The backups a run made. GET /backups has no run filter: its pages go newest first, so this reads
 * manual backups until it reaches ones created before the run was queued, keeping the run's own.
 */
async function backupsOf(steward: Steward, run: Run): Promise<Backup[]> {
  const queuedAt = Date.parse(run.queuedAt)
  const made: Backup[] = []
  let cursor: string | undefined
  do {
    const page = ok(
      'GET /backups',
      await steward.GET('/backups', { params: { query: { kind: 'manual', limit: 100, cursor } } }),
    )
    made.push(...page.items.filter((b) => b.runId === run.id))
    if (page.items.some((b) => Date.parse(b.createdAt) < queuedAt)) break
    cursor = page.nextCursor ?? undefined
  } while (cursor)
  return made
}

/** Streams a backup's file into `dir`, checking its size and sha256 against the record. */
async function download(steward: Steward, backup: Backup, dir: string) {
  const { data, error, response } = await steward.GET('/backups/{id}/download', {
    params: { path: { id: backup.id } },
    parseAs: 'stream',
  })
  if (!response.ok || !data) throw failed(`GET /backups/${backup.id}/download`, response, error)
  await fs.mkdir(dir, { recursive: true })
  const file = path.join(dir, path.basename(backup.file))
  const hash = createHash('sha256')
  let bytes = 0
  await pipeline(
    Readable.fromWeb(data as ReadableStream<Uint8Array>),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk)
        bytes += chunk.length
        yield chunk
      }
    },
    createWriteStream(file),
  )
  const sha256 = hash.digest('hex')
  if (bytes !== backup.bytes || sha256 !== backup.sha256) {
    throw new Error(
      `${file}: got ${bytes} bytes (sha256 ${sha256}), Steward recorded ${backup.bytes} (${backup.sha256})`,
    )
  }
  return { backup, file, bytes }
}

/** The reply's body, or an error naming the call and what Steward answered. */
function ok<T>(call: string, result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok && result.data !== undefined) return result.data
  throw failed(call, result.response, result.error)
}

function failed(call: string, response: Response, error: unknown): Error {
  // Steward's errors are JSON: { statusCode, error, message }.
  const message = (error as { message?: string } | undefined)?.message ?? response.statusText
  return new Error(`${call}: ${response.status} ${message}`)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { STEWARD_URL: url, STEWARD_TOKEN: token } = process.env
  if (!url || !token) {
    process.stderr.write('usage: STEWARD_URL=… STEWARD_TOKEN=… node --import tsx examples/client.ts [dir]\n')
    process.exit(2)
  }
  await main({ url, token, dir: process.argv[2] ?? '.' }).catch((err: Error) => {
    process.stderr.write(`${err.message}\n`)
    process.exitCode = 1
  })
}
