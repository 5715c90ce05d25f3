// Shared by the backup benchmarks: a PostgreSQL (DATABASE_URL, or an embedded one under
// BENCH_DATA_DIR), a pgbench database of BENCH_SCALE (35 ≈ 500 MB) to dump, a database for
// Steward's own tables, medians and a description of the machine. Not part of `npm test`.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import postgres, { type Sql } from 'postgres'
import { startEmbeddedPostgres } from '../src/db/embedded.js'
import { connectionEnv, locateTool, parseDatabaseUrl, serverVersion } from '../src/services/backup-tools.js'

const run = promisify(execFile)

export const SCALE = Number(process.env.BENCH_SCALE ?? 35)
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const BENCH_DB = `steward_bench_s${SCALE}`

export interface BenchDatabases {
  /** The pgbench database that gets dumped. */
  benchUrl: string
  benchName: string
  /** Steward's own database (job_runs, backups). */
  stewardUrl: string
  serverVersion: string
  stop(): Promise<void>
}

const withDatabase = (url: string, name: string) => {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

export function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}

async function ensureDatabase(admin: Sql, name: string): Promise<boolean> {
  const [row] = await admin`select 1 from pg_database where datname = ${name}`
  if (!row) await admin`create database ${admin(name)}`
  return !row
}

/** pgbench -i at BENCH_SCALE, unless the database already holds that many accounts. */
async function initPgbench(admin: Sql, adminUrl: string): Promise<void> {
  const created = await ensureDatabase(admin, BENCH_DB)
  const url = withDatabase(adminUrl, BENCH_DB)
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const [have] = created
      ? [undefined]
      : await sql<{ n: string }[]>`select count(*) as n from pgbench_accounts`.catch(() => [undefined])
    if (Number(have?.n) === SCALE * 100_000) return
    const psql = await locateTool('psql', await serverVersion(sql))
    const pgbench = path.join(path.dirname(psql.path), 'pgbench')
    log(`pgbench -i -s ${SCALE} (about ${Math.round(SCALE * 15)} MB); this takes a minute or two`)
    await run(pgbench, ['-i', '-q', '-s', String(SCALE)], {
      env: connectionEnv(parseDatabaseUrl(url), BENCH_DB),
      maxBuffer: 64 << 20,
    })
  } finally {
    await sql.end()
  }
}

export async function benchDatabases(): Promise<BenchDatabases> {
  let adminUrl = process.env.DATABASE_URL
  let stopServer = async () => {}
  if (!adminUrl) {
    const dataDir = process.env.BENCH_DATA_DIR ?? path.join(os.tmpdir(), 'steward-bench')
    await fs.mkdir(dataDir, { recursive: true })
    log(`embedded PostgreSQL under ${dataDir} (BENCH_DATA_DIR; kept for the next run)`)
    const db = await startEmbeddedPostgres({ dataDir, database: 'postgres' })
    adminUrl = db.adminUrl
    stopServer = () => db.stop()
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await initPgbench(admin, adminUrl)
    const stewardName = `steward_bench_app_${process.pid}`
    await ensureDatabase(admin, stewardName)
    const [size] = await admin<
      { size: string }[]
    >`select pg_size_pretty(pg_database_size(${BENCH_DB})) as size`
    const [version] = await admin<{ v: string }[]>`select current_setting('server_version') as v`
    log(`database ${BENCH_DB}: ${size?.size}`)
    return {
      benchUrl: withDatabase(adminUrl, BENCH_DB),
      benchName: BENCH_DB,
      stewardUrl: withDatabase(adminUrl, stewardName),
      serverVersion: String(version?.v),
      stop: async () => {
        const cleanup = postgres(adminUrl as string, { max: 1, onnotice: () => {} })
        await cleanup`drop database if exists ${cleanup(stewardName)} with (force)`
        await cleanup.end()
        await stopServer()
      },
    }
  } finally {
    await admin.end()
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

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

export function machine() {
  return {
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    date: new Date().toISOString(),
  }
}

export const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10
