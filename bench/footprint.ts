// Footprint: time from starting `src/server.ts` (node --import tsx, as `npm start` does) to the first
// 200 from /ready, and the process's RSS once idle; with the embedded PostgreSQL (first start: an
// empty DATA_DIR, initdb included; later start: the same DATA_DIR again) and with an external one
// (DATABASE_URL; first start applies the migrations). Reported, no goal.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {
  type Bench,
  createDatabase,
  log,
  mb,
  median,
  ms,
  QUICK,
  type Result,
  rss,
  sleep,
  startServer,
  table,
} from './harness.js'

const ROUNDS = QUICK ? 1 : 2
const IDLE_WAIT_MS = QUICK ? 500 : 1500

interface Start {
  readyMs: number
  idleRss: number
}

async function startOnce(env: Record<string, string>): Promise<Start> {
  const server = await startServer('src/server.ts', env, { timeoutMs: 120_000 })
  try {
    await sleep(IDLE_WAIT_MS)
    return { readyMs: server.readyMs, idleRss: await rss(server.pid) }
  } finally {
    await server.stop()
  }
}

export async function footprint(bench: Bench): Promise<Result> {
  const cases = {
    'embedded, first start': [] as Start[],
    'embedded, later start': [] as Start[],
    'external, first start': [] as Start[],
    'external, later start': [] as Start[],
  }
  for (let r = 0; r < ROUNDS; r++) {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-footprint-'))
    const env = { DATA_DIR: dataDir, BACKUP_DIR: path.join(dataDir, 'backups'), DATABASE_URL: '' }
    try {
      cases['embedded, first start'].push(await startOnce(env))
      // --quick: the later starts run the same code as the first ones; skipped to stay under a minute.
      if (!QUICK) cases['embedded, later start'].push(await startOnce(env))
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true })
    }
    const db = await createDatabase(bench, `steward_bench_footprint_${process.pid}`)
    try {
      const external = { DATABASE_URL: db.url, BACKUP_DIR: path.join(os.tmpdir(), 'steward-bench-none') }
      cases['external, first start'].push(await startOnce(external))
      if (!QUICK) cases['external, later start'].push(await startOnce(external))
    } finally {
      await db.drop()
    }
    log(
      `footprint round ${r + 1}: ${Object.values(cases)
        .map((c) => ms(c.at(-1)?.readyMs ?? 0))
        .join(', ')}`,
    )
  }
  const entries = Object.entries(cases).filter(([, c]) => c.length > 0)
  const medianReady = (c: Start[]) => median(c.map((s) => s.readyMs))
  const medianRss = (c: Start[]) => median(c.map((s) => s.idleRss))
  return {
    name: 'footprint',
    measured:
      entries.map(([k, c]) => `${k} ${ms(medianReady(c))}`).join(', ') +
      `; idle RSS ${mb(medianRss(cases['external, first start']))} MiB`,
    goal: 'idle RSS; start to /ready, reported',
    verdict: 'reported',
    section: `\`node --import tsx src/server.ts\` (what \`npm start\` runs) started as a child process; "ready" is the
first 200 from \`GET /ready\`, polled every 20 ms from the spawn. RSS is the Node process's own
(\`VmRSS\`), ${IDLE_WAIT_MS / 1000} s after ready; the embedded PostgreSQL's processes are not included. Embedded
first start: an empty \`DATA_DIR\` (initdb, start, create the database, migrations, seeds); later start:
the same \`DATA_DIR\` again. External: a new database on the benchmark's server (first start applies the
migrations), then the same again. Medians of ${ROUNDS} rounds (the mean, for two).

${table(
  ['case', 'start → /ready', 'each round', 'idle RSS'],
  entries.map(([k, c]) => [
    k,
    `**${ms(medianReady(c))}**`,
    c.map((s) => ms(s.readyMs)).join(', '),
    `${mb(medianRss(c))} MiB`,
  ]),
)}`,
  }
}
