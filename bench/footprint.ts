// Footprint: time from starting the server to the first 200 from /ready, and the process's RSS once
// idle; compiled (`dist/server.js`, what `npm start` runs) and through tsx (`node --import tsx
// src/server.ts`, what `npm run dev` runs and `npm start` ran before); with the embedded PostgreSQL
// (first start: an empty DATA_DIR, initdb included; later start: the same DATA_DIR again) and with
// an external one (DATABASE_URL; first start applies the migrations). Goal (compiled, external):
// idle RSS ≤ 110 MiB and start to /ready ≤ 1.5 s.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {
  api,
  type Bench,
  createDatabase,
  log,
  mb,
  median,
  ms,
  QUICK,
  type Result,
  ROOT,
  rss,
  sleep,
  startServer,
  table,
} from './harness.js'

const ROUNDS = QUICK ? 1 : 2
const IDLE_WAIT_MS = QUICK ? 500 : 1500
const ENTRIES = { compiled: 'dist/server.js', tsx: 'src/server.ts' } as const
const GOAL = { rssMiB: 110, readyMs: 1500 }

interface Start {
  readyMs: number
  idleRss: number
  /** After the first requests that validate and serialize (schemas compile at first use). */
  usedRss: number
}

// One of each kind of route: lists, a query validated, a body validated (and refused), the spec.
const FIRST_REQUESTS: { url: string; method?: string; body?: unknown; expect?: number }[] = [
  { url: '/jobs' },
  { url: '/runs?state=failed&limit=5' },
  { url: '/schedules?recent=5' },
  { url: '/backups' },
  { url: '/schedules/preview', method: 'POST', body: { cron: '*/5 * * * *' } },
  { url: '/schedules/x', method: 'PATCH', body: { crn: '* * * * *' }, expect: 400 },
  { url: '/openapi.json' },
]

async function startOnce(entry: string, env: Record<string, string>): Promise<Start> {
  const server = await startServer(entry, env, { timeoutMs: 120_000 })
  try {
    await sleep(IDLE_WAIT_MS)
    const idleRss = await rss(server.pid)
    for (const request of FIRST_REQUESTS) await api(server.base, request.url, request)
    await sleep(IDLE_WAIT_MS)
    return { readyMs: server.readyMs, idleRss, usedRss: await rss(server.pid) }
  } finally {
    await server.stop()
  }
}

/** `npm ci` builds dist/ (the prepare script); a checkout that never ran it is built here. */
function ensureBuilt(): void {
  if (existsSync(path.join(ROOT, ENTRIES.compiled))) return
  log('footprint: building dist/ (npm run build)')
  execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' })
}

export async function footprint(bench: Bench): Promise<Result> {
  ensureBuilt()
  const cases = new Map<string, Start[]>()
  const record = (key: string, start: Start) => cases.set(key, [...(cases.get(key) ?? []), start])
  for (let r = 0; r < ROUNDS; r++) {
    for (const [how, entry] of Object.entries(ENTRIES)) {
      const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-footprint-'))
      const env = { DATA_DIR: dataDir, BACKUP_DIR: path.join(dataDir, 'backups'), DATABASE_URL: '' }
      try {
        record(`${how}, embedded, first start`, await startOnce(entry, env))
        // --quick: the later starts run the same code as the first ones; skipped to stay under a minute.
        if (!QUICK) record(`${how}, embedded, later start`, await startOnce(entry, env))
      } finally {
        await fs.rm(dataDir, { recursive: true, force: true })
      }
      const db = await createDatabase(bench, `steward_bench_footprint_${process.pid}`)
      try {
        const external = { DATABASE_URL: db.url, BACKUP_DIR: path.join(os.tmpdir(), 'steward-bench-none') }
        record(`${how}, external, first start`, await startOnce(entry, external))
        if (!QUICK) record(`${how}, external, later start`, await startOnce(entry, external))
      } finally {
        await db.drop()
      }
    }
    log(
      `footprint round ${r + 1}: ${[...cases].map(([k, c]) => `${k} ${ms(c.at(-1)?.readyMs ?? 0)}`).join(', ')}`,
    )
  }
  const medianReady = (c: Start[]) => median(c.map((s) => s.readyMs))
  const medianRss = (c: Start[]) => median(c.map((s) => s.idleRss))
  const medianUsed = (c: Start[]) => median(c.map((s) => s.usedRss))
  const compiled = cases.get(`compiled, external, ${QUICK ? 'first' : 'later'} start`) ?? []
  const tsx = cases.get(`tsx, external, ${QUICK ? 'first' : 'later'} start`) ?? []
  const met = mb(medianRss(compiled)) <= GOAL.rssMiB && medianReady(compiled) <= GOAL.readyMs
  return {
    name: 'footprint',
    measured: `compiled, external: ready ${ms(medianReady(compiled))}, idle RSS ${mb(medianRss(compiled))} MiB (tsx: ${ms(medianReady(tsx))}, ${mb(medianRss(tsx))} MiB)`,
    goal: `compiled start, external database: idle RSS ≤ ${GOAL.rssMiB} MiB, start → /ready ≤ ${GOAL.readyMs} ms`,
    verdict: met ? 'met' : 'missed',
    section: `Each server is started as a child process: compiled (\`node dist/server.js\`, what \`npm start\`
runs since the TypeScript is built at \`npm ci\`) and through tsx (\`node --import tsx src/server.ts\`,
what \`npm run dev\` runs and what \`npm start\` ran before). "Ready" is the first 200 from
\`GET /ready\`, polled every 20 ms from the spawn. RSS is the Node process's own (\`VmRSS\`),
${IDLE_WAIT_MS / 1000} s after ready ("idle"), and again ${IDLE_WAIT_MS / 1000} s after a first request to each kind of route
(\`GET /jobs\`, \`/runs\`, \`/schedules\`, \`/backups\`, \`/openapi.json\`, \`POST /schedules/preview\` and a \`PATCH\` refused with
a 400: schemas compile when a request first needs them); the embedded PostgreSQL's processes are not included. Embedded first start:
an empty \`DATA_DIR\` (initdb, start, create the database, migrations, seeds); later start: the same
\`DATA_DIR\` again. External: a new database on the benchmark's server (first start applies the
migrations), then the same again. Medians of ${ROUNDS} rounds (the mean, for two).

${table(
  ['case', 'start → /ready', 'each round', 'idle RSS', 'RSS after first requests'],
  [...cases].map(([k, c]) => [
    k,
    `**${ms(medianReady(c))}**`,
    c.map((s) => ms(s.readyMs)).join(', '),
    `${mb(medianRss(c))} MiB`,
    `${mb(medianUsed(c))} MiB`,
  ]),
)}`,
  }
}
