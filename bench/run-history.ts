// Run history read: `GET /runs?limit=50` under 10 connections (autocannon) with 10 k and with 1 M
// rows in job_runs, against a bare Fastify route replying the same 50 runs from memory; Steward as
// configured by default (pages kept until a run changes) and with every request reading the database.
// Goals: ≥ 0.5 of the bare route's req/s; p99 at 1 M ≤ 1.5 × p99 at 10 k.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import type { Sql } from 'postgres'
import { buildApp } from '../src/app.js'
import {
  AUTH,
  api,
  type Bench,
  connect,
  createStewardDatabase,
  log,
  median,
  ms,
  QUICK,
  type Result,
  round,
  type Server,
  startServer,
  stewardConfig,
  table,
} from './harness.js'
import { benchJobs } from './noop-job.js'

const SIZES = QUICK ? [1000, 5000] : [10_000, 1_000_000]
const LAYER_CALLS = 400
const WARM_UP_S = QUICK ? 0.2 : 1
const ROUNDS = QUICK ? 1 : 3
const SECONDS = QUICK ? 0.5 : 3
const URL_PATH = '/runs?limit=50'

/** Rows numbered from+1..to, set-based: finished runs of the six jobs, one a second, some failed. */
async function insertRuns(sql: Sql, from: number, to: number): Promise<void> {
  await sql`
    insert into job_runs (job, schedule, trigger, state, attempt, max_attempts, args, scheduled_for,
                          queued_at, started_at, finished_at, heartbeat_at, result, error, instance)
    select j.job, case when i % 10 = 0 then null else j.job end,
           case when i % 10 = 0 then 'manual' else 'schedule' end,
           case when i % 50 = 0 then 'failed' else 'succeeded' end, 1, 3, '{}'::jsonb,
           case when i % 10 = 0 then null else j.t end,
           j.t, j.t + interval '5 ms', j.t + interval '120 ms', j.t + interval '120 ms',
           case when i % 50 = 0 then null else jsonb_build_object('deleted', i % 1000, 'batches', 1) end,
           case when i % 50 = 0 then '{"code":"error","message":"benchmark failure"}'::jsonb end,
           'bench-host:1'
    from generate_series(${from + 1}::int, ${to}::int) as i,
         lateral (select (array['cache-clear', 'prune-runs', 'database-backup', 'registry-sync',
                                'template-sync', 'template-embed'])[1 + i % 6] as job,
                         timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second' as t) as j`
  await sql`vacuum analyze job_runs`
}

/** Mean time of `work` over n serial calls after n/5 unmeasured ones. */
async function serial(n: number, work: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < n / 5; i++) await work()
  const started = performance.now()
  for (let i = 0; i < n; i++) await work()
  return (performance.now() - started) / n
}

/**
 * Where one request's time goes, layer by layer, one call at a time in this process: PostgreSQL's
 * execution of the query, postgres.js fetching the rows raw, the runs service (camel-case transform,
 * toRun), the whole route through app.inject, and /ready for the framework around one trivial query.
 */
async function layers(url: string, sql: Sql): Promise<[string, number][]> {
  const n = QUICK ? 50 : LAYER_CALLS
  const app = await buildApp(stewardConfig(url, { SCHEDULER_ENABLED: 'false' }), { jobs: benchJobs })
  try {
    await app.ready()
    const plans: number[] = []
    for (let i = 0; i < 20; i++) {
      const [row] = await sql<{ 'QUERY PLAN': { 'Execution Time': number }[] }[]>`
        explain (analyze, format json) select * from job_runs where true order by id desc limit 51`
      plans.push(row?.['QUERY PLAN'][0]?.['Execution Time'] ?? Number.NaN)
    }
    return [
      ['PostgreSQL executes the query (`explain analyze`)', median(plans)],
      [
        'postgres.js fetches the 51 rows, no transform',
        await serial(n, () => sql`select * from job_runs order by id desc limit 51`),
      ],
      [
        '`runs.list` (postgres.js with the column-name transform, `toRun`)',
        await serial(n, () => app.runStore.list({}, 50)),
      ],
      [
        '`GET /runs?limit=50`, uncached, through `app.inject` (no socket)',
        await serial(n, () => app.inject({ url: URL_PATH, headers: { ...AUTH, ...NO_CACHE } })),
      ],
      [
        '`GET /ready` through `app.inject` (`select 1`)',
        await serial(n, () => app.inject({ url: '/ready' })),
      ],
    ]
  } finally {
    await app.close()
  }
}

/** What the layer measurements say could be won in our code (the transform and the route itself). */
function layerNote(perLayer: [string, number][]): string {
  const [, raw, service, route] = perLayer.map(([, t]) => t)
  if (raw === undefined || service === undefined || route === undefined) return ''
  return `of the ${round(route, 2)} ms a request costs in-process, ${round(service - raw, 2)} ms is the runs service on top of
fetching the rows (the column-name transform and \`toRun\`) and ${round(route - service, 2)} ms the route around it (hooks,
validation, serialization).`
}

interface Sample {
  rps: number
  p99: number
  non2xx: number
}

/** Sent to make every request read the database (Steward otherwise keeps pages until a run changes). */
const NO_CACHE = { 'cache-control': 'no-cache' }

async function load(base: string, seconds: number, urlPath = URL_PATH, headers = {}): Promise<Sample> {
  const r = await autocannon({
    url: `${base}${urlPath}`,
    connections: 10,
    duration: seconds,
    headers: { ...AUTH, ...headers },
  })
  return { rps: r.requests.average, p99: r.latency.p99, non2xx: r.non2xx + r.errors + r.timeouts }
}

export async function runHistory(bench: Bench): Promise<Result> {
  const db = await createStewardDatabase(bench, `steward_bench_history_${process.pid}`)
  const sql = connect(db.url, 1)
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-page-'))
  const servers: Server[] = []
  const bySize: { size: number; steward: Sample[]; uncached: Sample[]; bare: Sample[]; insertMs: number }[] =
    []
  // Where the gap comes from: Steward's routes that do less, measured once at the first size.
  const ladder: [string, Sample][] = []
  let perLayer: [string, number][] = []
  try {
    let have = 0
    for (const size of SIZES) {
      log(`run history: inserting ${size - have} rows`)
      const t = performance.now()
      await insertRuns(sql, have, size)
      const insertMs = performance.now() - t
      have = size
      if (servers.length === 0) {
        const steward = await startServer('bench/serve.ts', {
          DATABASE_URL: db.url,
          SCHEDULER_ENABLED: 'false',
        })
        // Kept at once, so a failure below still stops it (a server left running keeps the
        // benchmark's process, and CI, waiting for ever).
        servers.push(steward)
        const pageFile = path.join(tmp, 'page.json')
        await fs.writeFile(pageFile, JSON.stringify(await api(steward.base, URL_PATH)))
        servers.push(await startServer('bench/bare-server.ts', { BENCH_PAGE_FILE: pageFile }))
      }
      const [steward, bare] = servers as [Server, Server]
      const entry = {
        size,
        steward: [] as Sample[],
        uncached: [] as Sample[],
        bare: [] as Sample[],
        insertMs,
      }
      // Warm both up (JIT, connection pool, the index in shared buffers), unmeasured.
      await load(steward.base, WARM_UP_S, URL_PATH, NO_CACHE)
      await load(bare.base, WARM_UP_S)
      for (let round = 0; round < ROUNDS; round++) {
        // Rotate who goes first, so none always runs on the cooler machine.
        const order = ['bare', 'steward', 'uncached'].map((_, i, all) => all[(i + round) % all.length])
        for (const who of order) {
          if (who === 'bare') entry.bare.push(await load(bare.base, SECONDS))
          else if (who === 'steward') entry.steward.push(await load(steward.base, SECONDS))
          else entry.uncached.push(await load(steward.base, SECONDS, URL_PATH, NO_CACHE))
        }
      }
      if (ladder.length === 0) {
        perLayer = await layers(db.url, sql)
        ladder.push(['Steward `GET /health` (no database)', await load(steward.base, SECONDS, '/health')])
        ladder.push(['Steward `GET /ready` (`select 1`)', await load(steward.base, SECONDS, '/ready')])
      }
      const rps = (samples: Sample[]) => round(median(samples.map((s) => s.rps)))
      log(
        `  ${size} rows: Steward ${rps(entry.steward)} req/s (${rps(entry.uncached)} uncached), bare ${rps(entry.bare)} req/s`,
      )
      bySize.push(entry)
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    await sql.end()
    await db.drop()
    await fs.rm(tmp, { recursive: true, force: true })
  }
  const failedRequests = [
    ...bySize.flatMap((e) => [...e.steward, ...e.uncached, ...e.bare]),
    ...ladder.map(([, s]) => s),
  ].reduce((n, s) => n + s.non2xx, 0)
  // A server shedding load (503 from @fastify/under-pressure) is a result; one that answers nothing is broken.
  if (bySize.some((e) => e.steward.every((s) => s.rps === 0))) throw new Error('GET /runs answered nothing')
  const med = (samples: Sample[], key: 'rps' | 'p99') => median(samples.map((s) => s[key]))
  const ratios = bySize.map((e) => med(e.steward, 'rps') / med(e.bare, 'rps'))
  const uncachedRatios = bySize.map((e) => med(e.uncached, 'rps') / med(e.bare, 'rps'))
  const small = bySize[0] as (typeof bySize)[number]
  const large = bySize[bySize.length - 1] as (typeof bySize)[number]
  // The table's size matters only when the database is read: judge the p99 growth on that path.
  const growth = med(large.uncached, 'p99') / med(small.uncached, 'p99')
  const rpsMet = ratios.every((r) => r >= 0.5)
  const p99Met = growth <= 1.5
  const label = (n: number) => (n >= 1e6 ? `${n / 1e6} M` : `${n / 1e3} k`)
  return {
    name: 'run history read',
    measured: `${bySize.map((e, i) => `${label(e.size)}: ×${round(ratios[i] ?? 0, 2)} of bare (×${round(uncachedRatios[i] ?? 0, 2)} uncached)`).join(', ')}; uncached p99 ${label(large.size)}/${label(small.size)} ×${round(growth, 2)}`,
    goal: '≥ 0.5 of bare req/s; p99 at 1 M ≤ 1.5 × at 10 k',
    verdict: rpsMet && p99Met ? 'met' : 'missed',
    section: `\`GET ${URL_PATH}\` with 10 connections (autocannon, in the benchmark process) against a
\`bench/serve.ts\` process (\`SCHEDULER_ENABLED=false\`), and the same against \`bench/bare-server.ts\`, a bare
Fastify route replying the same 50 runs from memory. Steward is measured as configured by default, where
a page is kept in memory until any run changes (at most \`RUNS_CACHE_MS\`, 1 s; nothing changes during the
benchmark, so almost every request is served from memory), and "uncached", every request sending
\`Cache-Control: no-cache\` and so reading the database. Rows are inserted with \`generate_series\` (six jobs,
one a second, 1 in 50 failed, 1 in 10 manual), then \`vacuum analyze\`. Each figure is the median of
${ROUNDS} rounds of ${SECONDS} s, rotating which goes first, after a ${WARM_UP_S} s warm-up of each.

${table(
  [
    'rows in job_runs',
    'insert',
    'Steward req/s',
    'uncached req/s',
    'bare req/s',
    'ratio',
    'uncached ratio',
    'Steward p99',
    'uncached p99',
    'bare p99',
  ],
  bySize.map((e, i) => [
    label(e.size),
    ms(e.insertMs),
    round(med(e.steward, 'rps')),
    round(med(e.uncached, 'rps')),
    round(med(e.bare, 'rps')),
    `**${round(ratios[i] ?? 0, 2)}**`,
    round(uncachedRatios[i] ?? 0, 2),
    ms(med(e.steward, 'p99')),
    ms(med(e.uncached, 'p99')),
    ms(med(e.bare, 'p99')),
  ]),
)}

Where the difference goes, at ${label(small.size)} rows (one round of ${SECONDS} s each):

${table(
  ['route', 'req/s', 'p99'],
  [
    ['bare Fastify, the page from memory', round(med(small.bare, 'rps')), ms(med(small.bare, 'p99'))],
    ...ladder.map(([name, s]) => [name, round(s.rps), ms(s.p99)]),
    [
      `Steward \`GET ${URL_PATH}\`, uncached`,
      round(med(small.uncached, 'rps')),
      ms(med(small.uncached, 'p99')),
    ],
    [`Steward \`GET ${URL_PATH}\``, round(med(small.steward, 'rps')), ms(med(small.steward, 'p99'))],
  ],
)}

One request at a time, in the benchmark's process, each layer adding to the one above it (mean of
${QUICK ? 50 : LAYER_CALLS} calls):

${table(
  ['layer', 'time per call'],
  perLayer.map(([name, t]) => [name, `${round(t, 3)} ms`]),
)}

Throughput: ${rpsMet ? '**goal ≥ 0.5 met**' : '**goal ≥ 0.5 missed**'} (Steward as configured by default). Uncached p99 at ${label(large.size)} is
×${round(growth, 2)} the uncached p99 at ${label(small.size)}: ${p99Met ? '**goal ≤ 1.5 met**' : '**goal ≤ 1.5 missed**'}. The page is a keyset query on the primary key
(\`order by id desc limit 51\`), so its cost does not grow with the table.${failedRequests > 0 ? ` ${failedRequests} responses were errors (e.g. load shedding) or timeouts; autocannon counts them in req/s.` : ''}

The uncached path cannot reach half the bare route: the bare route does no I/O (routing and
\`JSON.stringify\` of an object it already holds), while an uncached request is a round trip to
PostgreSQL, decoding 51 rows of 17 columns (timestamps, jsonb) in postgres.js, shaping them and
serializing the page; the layers above show each step's share, and PostgreSQL's own execution is the
smallest of them. Server, PostgreSQL and autocannon share the machine's two cores, so every millisecond
of CPU per request counts directly against requests per second (building the page's JSON in PostgreSQL
instead was tried: it moved the cost to PostgreSQL and the total per request grew). ${layerNote(perLayer)}
So Steward keeps pages: run history is read far more often than it changes (dashboards poll it), and a
kept page is dropped the moment any run changes, on any instance (the runner's events here, the
\`steward_runs\` change feed from the others), so a client reads its own writes at once.`,
  }
}
