// The benchmarks' shared harness: one PostgreSQL server for the whole run (DATABASE_URL, or an
// embedded one), a fresh database per benchmark, Steward processes started the way an operator
// starts them, an admin token for every request, and the statistics every benchmark reports.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres, { type Sql } from 'postgres'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { freePort, startEmbeddedPostgres } from '../src/db/embedded.js'
import { benchJobs } from './noop-job.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const QUICK = process.argv.includes('--quick')

/** Every server the benchmarks start gets this admin token, and every request sends it. */
export const TOKEN = randomBytes(32).toString('base64url')
export const AUTH = { authorization: `Bearer ${TOKEN}` }

/** What one benchmark hands back: a line for the summary table and a section for BENCHMARKS.md. */
export interface Result {
  name: string
  /** The measured figure(s), one line. */
  measured: string
  goal: string
  verdict: 'met' | 'missed' | 'reported'
  /** Markdown: how it was measured, the numbers, and why where a goal is missed. */
  section: string
}

export interface Bench {
  adminUrl: string
  serverVersion: string
  /** Where the embedded server keeps its data, when there is one. */
  dataDir?: string
}

export function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export function withDatabase(url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

export const connect = (url: string, max = 2): Sql => postgres(url, { max, onnotice: () => {} })

/**
 * The PostgreSQL for the run. A full run keeps its embedded cluster under BENCH_DATA_DIR so the next
 * run skips `pgbench -i`; --quick uses a throw-away one, so CI runs never share a data directory.
 */
export async function startBench(): Promise<{ bench: Bench; stop(): Promise<void> }> {
  let adminUrl = process.env.DATABASE_URL
  let stop = async () => {}
  let dataDir: string | undefined
  if (!adminUrl) {
    dataDir = QUICK
      ? await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-quick-'))
      : (process.env.BENCH_DATA_DIR ?? path.join(os.tmpdir(), 'steward-bench'))
    await fs.mkdir(dataDir, { recursive: true })
    log(`embedded PostgreSQL under ${dataDir}`)
    const db = await startEmbeddedPostgres({ dataDir, database: 'postgres', persistent: !QUICK })
    adminUrl = db.adminUrl
    const dir = dataDir
    stop = async () => {
      await db.stop()
      if (QUICK) await fs.rm(dir, { recursive: true, force: true })
    }
  }
  const admin = connect(adminUrl, 1)
  const [row] = await admin<{ v: string }[]>`select current_setting('server_version') as v`
  await admin.end()
  return { bench: { adminUrl, serverVersion: String(row?.v), dataDir }, stop }
}

/** A new, empty database; `drop()` removes it (with force: servers may still hold connections). */
export async function createDatabase(bench: Bench, name: string) {
  const admin = connect(bench.adminUrl, 1)
  try {
    await admin`drop database if exists ${admin(name)} with (force)`
    await admin`create database ${admin(name)}`
  } finally {
    await admin.end()
  }
  return {
    name,
    url: withDatabase(bench.adminUrl, name),
    async drop() {
      const sql = connect(bench.adminUrl, 1)
      await sql`drop database if exists ${sql(name)} with (force)`
      await sql.end()
    },
  }
}

/**
 * A database with Steward's tables and no schedules: the app is built once without its scheduler
 * (migrations, default schedules seeded), then the defaults are deleted so an hourly backup cannot
 * fire in the middle of a measurement. Deleted seeds stay deleted on later starts.
 */
export async function createStewardDatabase(bench: Bench, name: string) {
  const db = await createDatabase(bench, name)
  const app = await buildApp(stewardConfig(db.url, { SCHEDULER_ENABLED: 'false' }), { jobs: benchJobs })
  await app.ready()
  await app.sql`delete from schedules`
  await app.close()
  return db
}

export function stewardConfig(databaseUrl: string, env: Record<string, string> = {}) {
  return loadConfig({ DATABASE_URL: databaseUrl, STEWARD_ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', ...env })
}

export interface Server {
  base: string
  pid: number
  /** SIGTERM, then wait for the exit (SIGKILL after 30 s). */
  stop(): Promise<void>
}

/**
 * Starts a Node entry point (src/server.ts, or bench/serve.ts for one with the benchmark's no-op
 * job) as its own process and waits until `readyPath` answers 200.
 */
export async function startServer(
  entry: string,
  env: Record<string, string>,
  options: { readyPath?: string; timeoutMs?: number } = {},
): Promise<Server & { readyMs: number }> {
  const port = await freePort()
  const started = performance.now()
  // Compiled JavaScript (dist/, what `npm start` runs) as it is; TypeScript through tsx.
  const args = entry.endsWith('.js') ? [entry] : ['--import', 'tsx', entry]
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      STEWARD_ADMIN_TOKEN: TOKEN,
      LOG_LEVEL: 'warn',
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
    },
    // Servers log to stdout; keep the benchmark's own stdout for its summary.
    stdio: ['ignore', 2, 2],
  })
  let exited = false
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true
      resolve()
    }),
  )
  const base = `http://127.0.0.1:${port}`
  const server: Server = {
    base,
    pid: child.pid as number,
    async stop() {
      if (exited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      await exit
      clearTimeout(timer)
    },
  }
  const deadline = Date.now() + (options.timeoutMs ?? 60_000)
  while (Date.now() < deadline && !exited) {
    const ok = await fetch(`${base}${options.readyPath ?? '/ready'}`, { headers: AUTH }).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return { ...server, readyMs: performance.now() - started }
    await sleep(20)
  }
  await server.stop()
  throw new Error(`${entry} did not become ready (${exited ? 'it exited' : 'timed out'})`)
}

/** fetch with the admin token and JSON; throws on an unexpected status. */
export async function api<T = unknown>(
  base: string,
  url: string,
  init: { method?: string; body?: unknown; expect?: number } = {},
): Promise<T> {
  const res = await fetch(`${base}${url}`, {
    method: init.method ?? 'GET',
    headers: { ...AUTH, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })
  if (init.expect === undefined ? !res.ok : res.status !== init.expect) {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${await res.text()}`)
  }
  return (res.status === 204 ? null : await res.json()) as T
}

export async function rss(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

export function median(values: number[]): number {
  return percentile(values, 50)
}

/** Nearest-rank percentile; NaN for no values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  if (p === 50 && sorted.length % 2 === 0) {
    const mid = sorted.length / 2
    return ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  }
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1] as number
}

export const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10
export const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits
export const ms = (n: number) => `${round(n, n < 10 ? 1 : 0)} ms`

/** Wall time of a command whose stdout goes to `out` (a file path or /dev/null), like `cmd > out`. */
export async function timeRedirected(command: string, args: string[], out: string, env?: NodeJS.ProcessEnv) {
  const handle = await fs.open(out, 'w')
  const started = performance.now()
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(command, args, { env, stdio: ['ignore', handle.fd, 'inherit'] })
      child.on('error', reject)
      child.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`)),
      )
    })
    return performance.now() - started
  } finally {
    await handle.close()
  }
}

/** A markdown table from a header row and data rows, columns padded as biome formats them. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows].map((row) => row.map(String))
  const widths = header.map((_, i) => Math.max(3, ...cells.map((row) => [...(row[i] ?? '')].length)))
  const pad = (cell: string, i: number) => cell + ' '.repeat((widths[i] ?? 0) - [...cell].length)
  const line = (row: string[]) => `| ${row.map(pad).join(' | ')} |`
  const [head, ...body] = cells as [string[], ...string[][]]
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n')
}

export function machine(bench: Bench) {
  const cpus = os.cpus()
  return {
    cpu: `${cpus[0]?.model.trim() ?? 'unknown'} × ${cpus.length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: `${bench.serverVersion} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'})`,
    load: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  }
}
