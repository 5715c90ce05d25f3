// Trigger throughput: `POST /jobs/bench-noop/runs` under 10 connections (autocannon) against a
// Steward process; runs created per second, and how long the created runs take to finish.
import autocannon from 'autocannon'
import {
  AUTH,
  type Bench,
  connect,
  createStewardDatabase,
  log,
  median,
  ms,
  QUICK,
  type Result,
  round,
  sleep,
  startServer,
  table,
} from './harness.js'
import { NOOP } from './noop-job.js'

const ROUNDS = QUICK ? 1 : 3
const SECONDS = QUICK ? 1 : 3
/** The per-token limit on mutating requests (RATE_LIMIT_MUTATIONS, default 300 a minute), raised out of the way. */
const RATE_LIMIT = 1_000_000_000

interface Sample {
  created: number
  perSecond: number
  p99: number
  other: number
  drainMs: number
}

export async function trigger(bench: Bench): Promise<Result> {
  const db = await createStewardDatabase(bench, `steward_bench_trigger_${process.pid}`)
  const sql = connect(db.url, 1)
  const server = await startServer('bench/serve.ts', {
    DATABASE_URL: db.url,
    SCHEDULER_ENABLED: 'false',
    RATE_LIMIT_MUTATIONS: String(RATE_LIMIT),
  })
  const samples: Sample[] = []
  const states = new Map<string, number>()
  try {
    const fire = (seconds: number) =>
      autocannon({
        url: `${server.base}/jobs/${NOOP}/runs`,
        method: 'POST',
        connections: 10,
        duration: seconds,
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: '{}',
      })
    await fire(QUICK ? 0.5 : 1) // warm-up, unmeasured
    for (let round = 0; round <= ROUNDS; round++) {
      const [before] = await sql<{ n: number }[]>`select count(*)::int as n from job_runs`
      const r = await fire(SECONDS)
      const ended = performance.now()
      // The runs were created; wait for the last of them to finish.
      while ((await sql`select 1 from job_runs where state in ('queued', 'running') limit 1`).length > 0) {
        await sleep(20)
      }
      const drainMs = performance.now() - ended
      const [after] = await sql<{ n: number }[]>`select count(*)::int as n from job_runs`
      const created = (after?.n ?? 0) - (before?.n ?? 0)
      if (round === 0) continue // the first round only fills the pool and the JIT
      samples.push({
        created,
        perSecond: created / SECONDS,
        p99: r.latency.p99,
        other: r.non2xx + r.errors + r.timeouts,
        drainMs,
      })
      log(`trigger: ${round}: ${created} runs in ${SECONDS} s, drained in ${Math.round(drainMs)} ms`)
    }
    for (const row of await sql<{ state: string; n: number }[]>`
      select state, count(*)::int as n from job_runs group by state`)
      states.set(row.state, row.n)
  } finally {
    await server.stop()
    await sql.end()
    await db.drop()
  }
  if (samples.some((s) => s.created === 0))
    throw new Error(`a round created no runs: ${JSON.stringify(samples)}`)
  const notSucceeded = [...states].filter(([s]) => s !== 'succeeded')
  if (notSucceeded.length > 0) throw new Error(`runs that did not succeed: ${JSON.stringify(notSucceeded)}`)
  const rate = median(samples.map((s) => s.perSecond))
  return {
    name: 'trigger throughput',
    measured: `${round(rate)} runs created per second`,
    goal: 'runs created per second, reported',
    verdict: 'reported',
    section: `\`POST /jobs/${NOOP}/runs\` with body \`{}\` and 10 connections (autocannon) against a \`bench/serve.ts\`
process (\`SCHEDULER_ENABLED=false\`); \`${NOOP}\` is a job registered only by the benchmark that returns at once.
Each request inserts the run and answers 202; the run starts in that process as soon as a slot is free (the
limits are on: the job's \`concurrency\` is 100, the process runs at most \`MAX_CONCURRENT_RUNS\`, 8). The server runs with
\`RATE_LIMIT_MUTATIONS=${RATE_LIMIT}\`: by default one token may trigger 300 runs a minute per route (429 after
that), which would measure the limiter, not the server. Runs created = rows added to
\`job_runs\` during a round; "drain" = from the end of the round until no run is queued or running.
${ROUNDS} rounds of ${SECONDS} s after an unmeasured one; every run ended \`succeeded\`
(${states.get('succeeded') ?? 0} in all).

${table(
  ['round', 'runs created', 'per second', 'request p99', 'non-2xx / errors', 'drain'],
  samples.map((s, i) => [i + 1, s.created, round(s.perSecond), ms(s.p99), s.other, ms(s.drainMs)]),
)}

**Median ${round(rate)} runs created per second** (each also executed and recorded as finished).`,
  }
}
