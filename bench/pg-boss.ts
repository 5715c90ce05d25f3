// Versus pg-boss: the same minute-level schedule (`* * * * *`) run by Steward and by pg-boss's cron
// (`boss.schedule` + `boss.work`), on the same database (pg-boss in its own schemas), in the same
// minutes. Lateness = when the handler started − the minute it was due. pg-boss runs twice: with
// its defaults and tuned to its fastest settings. Its resolution is a minute, so a full run waits
// for two fires (2-3 minutes); --quick only checks that each side starts and runs a job.
import PgBoss from 'pg-boss'
import { buildApp } from '../src/app.js'
import {
  AUTH,
  type Bench,
  connect,
  createStewardDatabase,
  log,
  ms,
  QUICK,
  type Result,
  round,
  sleep,
  stewardConfig,
  table,
} from './harness.js'
import { benchJobs, bodyStarts, NOOP } from './noop-job.js'

const FIRES = 2
const QUEUE = 'bench-minute'
const MINUTE = 60_000

interface Side {
  label: string
  /** Epoch ms at which a handler started, for each fire. */
  starts: number[]
}

async function startBoss(url: string, side: Side, options: { tuned: boolean }) {
  const boss = new PgBoss({
    connectionString: url,
    schema: options.tuned ? 'pgboss_tuned' : 'pgboss_default',
    max: 2,
    // Tuned: check the schedules every second (default 30 s) and move due ones every second (5 s).
    ...(options.tuned ? { cronMonitorIntervalSeconds: 1, cronWorkerIntervalSeconds: 1 } : {}),
  })
  boss.on('error', (err) => log(`pg-boss (${side.label}): ${err.message}`))
  await boss.start()
  await boss.createQueue(QUEUE)
  await boss.work(QUEUE, options.tuned ? { pollingIntervalSeconds: 0.5 } : {}, async () => {
    side.starts.push(Date.now())
  })
  return boss
}

/** Lateness of each fire due in [first, first + FIRES minutes), attributing a start to its minute. */
function lateness(side: Side, first: number): number[] {
  return side.starts
    .filter((t) => t >= first && t < first + FIRES * MINUTE + MINUTE / 2)
    .map((t) => t - (first + Math.floor((t - first) / MINUTE) * MINUTE))
}

export async function pgBoss(bench: Bench): Promise<Result> {
  bodyStarts.clear() // run ids restart in each benchmark's database
  const db = await createStewardDatabase(bench, `steward_bench_pgboss_${process.pid}`)
  const app = await buildApp(stewardConfig(db.url), { jobs: benchJobs })
  const steward: Side = { label: 'Steward', starts: [] }
  const defaults: Side = { label: 'pg-boss, defaults', starts: [] }
  const tuned: Side = { label: 'pg-boss, tuned', starts: [] }
  const bosses: PgBoss[] = []
  let first = 0
  try {
    await app.ready()
    bosses.push(await startBoss(db.url, defaults, { tuned: false }))
    bosses.push(await startBoss(db.url, tuned, { tuned: true }))
    if (QUICK) {
      // No minute boundary to wait for: check each side can run a job at all.
      for (const boss of bosses) await boss.send(QUEUE, {})
      const res = await app.inject({ method: 'POST', url: `/jobs/${NOOP}/runs`, headers: AUTH, payload: {} })
      if (res.statusCode !== 202) throw new Error(`trigger: ${res.statusCode} ${res.body}`)
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline && (defaults.starts.length === 0 || tuned.starts.length === 0))
        await sleep(100)
      if (defaults.starts.length === 0 || tuned.starts.length === 0) throw new Error('pg-boss ran no job')
    } else {
      const res = await app.inject({
        method: 'POST',
        url: '/schedules',
        headers: AUTH,
        payload: { name: 'bench-minute', job: NOOP, cron: '* * * * *' },
      })
      if (res.statusCode !== 201) throw new Error(`POST /schedules: ${res.statusCode} ${res.body}`)
      for (const boss of bosses) await boss.schedule(QUEUE, '* * * * *', {}, { tz: 'UTC' })
      first = Math.ceil((Date.now() + 5000) / MINUTE) * MINUTE
      const last = first + (FIRES - 1) * MINUTE
      log(`pg-boss: waiting for ${FIRES} minute fires, the first at ${new Date(first).toISOString()}`)
      // Until every side ran the last fire; pg-boss with defaults can be over 30 s late.
      const deadline = last + MINUTE
      const done = () =>
        [defaults, tuned].every((s) => s.starts.some((t) => t >= last)) &&
        [...bodyStarts.values()].some((t) => t >= last)
      while (Date.now() < deadline && !(Date.now() > last && done())) await sleep(250)
    }
  } finally {
    for (const boss of bosses) await boss.stop({ graceful: true, wait: true, close: true })
    await app.close()
  }
  if (QUICK) {
    await db.drop()
    return {
      name: 'versus pg-boss',
      measured: 'not measured in --quick (minute resolution); both ran a job',
      goal: 'lateness ratio, reported',
      verdict: 'reported',
      section: '',
    }
  }
  const sql = connect(db.url, 1)
  const rows = await sql<{ id: string }[]>`select id::text from job_runs where schedule = 'bench-minute'`
  await sql.end()
  await db.drop()
  steward.starts = rows.map((r) => bodyStarts.get(r.id)).filter((t): t is number => t !== undefined)
  const sides = [steward, defaults, tuned].map((side) => ({ side, late: lateness(side, first) }))
  for (const { side, late } of sides) {
    if (late.length !== FIRES) log(`pg-boss: ${side.label} ran ${late.length} of ${FIRES} fires`)
  }
  const worst = (late: number[]) => (late.length > 0 ? Math.max(...late) : Number.NaN)
  const mean = (late: number[]) => late.reduce((a, b) => a + b, 0) / late.length
  const stewardMean = mean(sides[0]?.late ?? [])
  const ratios = sides.slice(1).map(({ late }) => round(mean(late) / stewardMean))
  return {
    name: 'versus pg-boss',
    measured: `mean lateness Steward ${ms(stewardMean)}, pg-boss ${ms(mean(sides[1]?.late ?? []))} (defaults, ×${ratios[0]}), ${ms(mean(sides[2]?.late ?? []))} (tuned, ×${ratios[1]})`,
    goal: 'lateness ratio, reported',
    verdict: 'reported',
    section: `One \`* * * * *\` schedule each: Steward (in-process \`buildApp\`, the no-op job) and two pg-boss 10
instances on the same database in their own schemas, one with pg-boss's defaults (schedules checked every
30 s, due ones moved every 5 s, workers poll every 2 s) and one tuned to its fastest settings (1 s, 1 s,
0.5 s). Lateness: the moment the handler started − the minute it was due, for the ${FIRES} fires due from
${new Date(first).toISOString().slice(11, 16)} UTC. Only ${FIRES} fires, because pg-boss's cron resolution is one
minute and each fire costs a minute of the run's 10-minute budget; pg-boss's lateness is dominated by its
polling intervals, so more fires would move its figure within those bounds, not change the picture.

${table(
  ['', 'fires', 'lateness per fire', 'mean', 'worst', 'ratio to Steward (mean)'],
  sides.map(({ side, late }, i) => [
    side.label,
    late.length,
    late.map((l) => ms(l)).join(', '),
    ms(mean(late)),
    ms(worst(late)),
    i === 0 ? '1' : `×${ratios[i - 1]}`,
  ]),
)}

Steward arms an in-process timer for each schedule's next instant and claims the fire in the database
when it goes off; pg-boss polls for schedules that became due and hands each to a queue that workers
poll, so its lateness is the sum of those polling delays.`,
  }
}
