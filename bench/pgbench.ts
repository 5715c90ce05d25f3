// The database the backup and download benchmarks dump: `pgbench -i` at BENCH_SCALE (35 ≈ 530 MB on
// disk; 1 in --quick), created once and kept on the benchmark server for later runs.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { connectionEnv, locateTool, parseDatabaseUrl, serverVersion } from '../src/features/backups/tools.js'
import { type Bench, connect, log, QUICK, withDatabase } from './harness.js'

const run = promisify(execFile)

export const SCALE = QUICK ? 1 : Number(process.env.BENCH_SCALE ?? 35)
export const ROUNDS = QUICK ? 1 : Number(process.env.BENCH_ROUNDS ?? 5)

export interface PgbenchDatabase {
  name: string
  url: string
  size: string
}

export async function pgbenchDatabase(bench: Bench): Promise<PgbenchDatabase> {
  const name = `steward_bench_s${SCALE}`
  const url = withDatabase(bench.adminUrl, name)
  const admin = connect(bench.adminUrl, 1)
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`
    if (!exists) await admin`create database ${admin(name)}`
    const sql = connect(url, 1)
    try {
      const [have] = await sql<{ n: string }[]>`select count(*) as n from pgbench_accounts`.catch(() => [])
      if (Number(have?.n) !== SCALE * 100_000) {
        const psql = await locateTool('psql', await serverVersion(sql))
        log(`pgbench -i -s ${SCALE} (about ${SCALE * 15} MB); kept for the next run`)
        await run(path.join(path.dirname(psql.path), 'pgbench'), ['-i', '-q', '-s', String(SCALE)], {
          env: connectionEnv(parseDatabaseUrl(url), name),
          maxBuffer: 64 << 20,
        })
      }
    } finally {
      await sql.end()
    }
    const [size] = await admin<{ size: string }[]>`select pg_size_pretty(pg_database_size(${name})) as size`
    return { name, url, size: String(size?.size) }
  } finally {
    await admin.end()
  }
}
