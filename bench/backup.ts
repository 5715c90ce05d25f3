// Benchmark: the database-backup job's wall time against `pg_dump db > file` run by hand, on a
// pgbench database of BENCH_SCALE (default 35, about 500 MB), median of BENCH_ROUNDS (5) rounds in
// alternating order after one unmeasured warm-up round. Goal: ratio ≤ 1.05.
// Run: node --import tsx bench/backup.ts (with DATABASE_URL: that server, whose user may create
// databases; otherwise an embedded one under BENCH_DATA_DIR).
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { connectionEnv, locateTool, parseDatabaseUrl, serverVersion } from '../src/services/backup-tools.js'
import {
  type BenchDatabases,
  benchDatabases,
  log,
  machine,
  mb,
  median,
  ROUNDS,
  SCALE,
  timeRedirected,
} from './backup-support.js'

async function byHand(db: BenchDatabases, dir: string, pgDumpPath: string): Promise<number> {
  const env = connectionEnv(parseDatabaseUrl(db.benchUrl), db.benchName)
  const file = path.join(dir, 'by-hand.sql')
  const ms = await timeRedirected(pgDumpPath, ['--no-password'], file, env)
  await fs.rm(file)
  return ms
}

/** Triggers a manual backup through the API and waits for it: what an operator's request costs. */
async function backUpOnce(app: FastifyInstance) {
  const res = await app.inject({
    method: 'POST',
    url: '/jobs/database-backup/runs',
    payload: { args: { type: 'manual' } },
  })
  let run = res.json()
  while (['queued', 'running'].includes(run.state)) {
    await new Promise((r) => setTimeout(r, 10))
    run = (await app.inject(`/runs/${run.id}`)).json()
  }
  if (run.state !== 'succeeded') throw new Error(`backup run failed: ${JSON.stringify(run.error)}`)
  return run
}

async function main() {
  const db = await benchDatabases()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-backups-'))
  const config = loadConfig({
    DATABASE_URL: db.stewardUrl,
    BACKUP_DIR: dir,
    BACKUP_DATABASES: db.benchName,
    SCHEDULER_ENABLED: 'false',
  })
  const app = await buildApp(config)
  await app.ready()
  try {
    const pgDump = await locateTool('pg_dump', await serverVersion(app.sql))
    const job: number[] = []
    const jobInside: number[] = []
    const hand: number[] = []
    let bytes = 0
    const runJob = async () => {
      const started = performance.now()
      const run = await backUpOnce(app)
      const ms = performance.now() - started
      bytes = run.result.bytes
      await app.inject({ method: 'DELETE', url: `/backups/${run.result.backups[0].id}` })
      return { ms, inside: run.durationMs as number }
    }
    // One round unmeasured: the first run of anything pays for cold code and caches.
    await byHand(db, dir, pgDump.path)
    await runJob()
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate who goes first, so neither always gets the warmer cache.
      const order = round % 2 === 0 ? ['hand', 'job'] : ['job', 'hand']
      for (const who of order) {
        if (who === 'hand') hand.push(await byHand(db, dir, pgDump.path))
        else {
          const { ms, inside } = await runJob()
          job.push(ms)
          jobInside.push(inside)
        }
      }
      log(
        `round ${round + 1}: by hand ${Math.round(hand.at(-1) ?? 0)} ms, job ${Math.round(job.at(-1) ?? 0)} ms`,
      )
    }
    const ratio = median(job) / median(hand)
    const result = {
      benchmark: 'backup',
      ...machine(),
      postgres: db.serverVersion,
      pgDump: `${pgDump.path} ${pgDump.version}`,
      scale: SCALE,
      dumpMiB: mb(bytes),
      rounds: ROUNDS,
      byHandMs: hand.map(Math.round),
      jobMs: job.map(Math.round),
      jobRunDurationMs: jobInside,
      medianByHandMs: Math.round(median(hand)),
      medianJobMs: Math.round(median(job)),
      ratio: Math.round(ratio * 1000) / 1000,
      goal: '≤ 1.05',
      met: ratio <= 1.05,
    }
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } finally {
    await app.close()
    await fs.rm(dir, { recursive: true, force: true })
    await db.stop()
  }
}

await main()
