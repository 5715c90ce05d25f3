// Claim overhead: from the instant a fire is due to the moment the job's function starts, with
// Steward's database claim (insert under the unique key, queued → running) against node-cron calling
// the function directly. Both fire every second in the same process over the same window.
import { createTask } from 'node-cron'
import { buildApp } from '../src/app.js'
import {
  AUTH,
  type Bench,
  connect,
  createStewardDatabase,
  log,
  ms,
  percentile,
  QUICK,
  type Result,
  round,
  sleep,
  stewardConfig,
  table,
} from './harness.js'
import { benchJobs, bodyStarts, NOOP } from './noop-job.js'

const WINDOW_S = QUICK ? 2 : 20

export async function claimOverhead(bench: Bench): Promise<Result> {
  bodyStarts.clear() // run ids restart in each benchmark's database
  const db = await createStewardDatabase(bench, `steward_bench_claim_${process.pid}`)
  const app = await buildApp(stewardConfig(db.url), { jobs: benchJobs })
  const direct: number[] = []
  const task = createTask('* * * * * *', (ctx) => {
    direct.push(Date.now() - ctx.date.getTime())
  })
  let from = 0
  try {
    await app.ready()
    const res = await app.inject({
      method: 'POST',
      url: '/schedules',
      headers: AUTH,
      payload: { name: 'bench-claim', job: NOOP, cron: '* * * * * *' },
    })
    if (res.statusCode !== 201) throw new Error(`POST /schedules: ${res.statusCode} ${res.body}`)
    await task.start()
    await sleep(QUICK ? 1000 : 2000)
    from = Date.now()
    direct.length = 0
    log(`claim overhead: ${WINDOW_S} s of fires every second`)
    await sleep(WINDOW_S * 1000)
    await task.destroy()
    await sleep(1000)
  } finally {
    await task.destroy()
    await app.close()
  }
  const sql = connect(db.url, 1)
  const rows = await sql<{ id: string; due: Date; startedAt: Date | null }[]>`
    select id::text, scheduled_for as due, started_at as "startedAt" from job_runs
    where schedule = 'bench-claim' and scheduled_for >= ${new Date(from)}`
  await sql.end()
  await db.drop()
  const claimed: number[] = []
  const dbStart: number[] = []
  for (const row of rows) {
    const body = bodyStarts.get(row.id)
    if (body !== undefined) claimed.push(body - row.due.getTime())
    if (row.startedAt) dbStart.push(row.startedAt.getTime() - row.due.getTime())
  }
  if (claimed.length === 0 || direct.length === 0) throw new Error('no fires were measured')
  const ratio = percentile(claimed, 50) / percentile(direct, 50)
  const line = (label: string, v: number[]) => [
    label,
    v.length,
    ms(percentile(v, 50)),
    ms(percentile(v, 90)),
    ms(percentile(v, 99)),
    ms(Math.max(...v)),
  ]
  return {
    name: 'claim overhead',
    measured: `median ${ms(percentile(claimed, 50))} with the claim vs ${ms(percentile(direct, 50))} direct (×${round(ratio, 1)})`,
    goal: 'ratio, reported',
    verdict: 'reported',
    section: `One Steward schedule (\`* * * * * *\`, the no-op job, in-process \`buildApp\`) and one node-cron task
(\`createTask('* * * * * *', fn)\`) fire every second in the same process for ${WINDOW_S} s. Measured: the time
from the instant the fire was due to the start of the function (Steward: the job's body; node-cron: the
callback). Steward's path is a timer armed for the schedule's next fire (computed with node-cron's
matcher and kept in the database), then a transaction (advisory lock, compare-and-set of the schedule's
next fire, overlap check, insert under the unique key), then \`queued → running\`, then the body.

${table(['fire → function start', 'fires', 'p50', 'p90', 'p99', 'max'], [line('node-cron direct', direct), line('Steward, with the claim', claimed), line('(Steward, due → `started_at` in the row)', dbStart)])}

**Ratio of medians ${round(ratio, 1)}** (${ms(percentile(claimed, 50) - percentile(direct, 50))} added per fire by the
database round trips): the price of each fire running once however many instances share the database.`,
  }
}
