// The cost of a run's own log (issue 15): a job writing 10,000 lines through ctx.log, its run time
// with the lines stored (the default, RUN_LOG_MAX_LINES=10000) against the same job with the run log
// off (RUN_LOG_MAX_LINES=0: the lines still reach pino) and against a job writing no lines at all.
// In process, one run at a time, the median of several rounds. The run time is the run's own
// startedAt → finishedAt, which includes writing the last batch (the runner records the end after
// the log is flushed). pino runs at LOG_LEVEL=warn in every case, so what differs is the run log.
import { Type } from 'typebox'
import { buildApp } from '../src/app.js'
import { defineJob } from '../src/engine/job.js'
import type { Run } from '../src/engine/run-store.js'
import {
  AUTH,
  type Bench,
  createStewardDatabase,
  log,
  median,
  ms,
  QUICK,
  type Result,
  round,
  sleep,
  stewardConfig,
  table,
} from './harness.js'
import { benchJobs } from './noop-job.js'

const LINES = QUICK ? 1000 : 10_000
const ROUNDS = QUICK ? 2 : 7

const logger = defineJob({
  name: 'bench-logger',
  description: 'Benchmark: writes args.lines log lines with a field each',
  args: Type.Object({ lines: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  timeoutMs: 120_000,
  maxAttempts: 1,
  concurrency: 1,
  async run({ args, log }) {
    for (let i = 1; i <= args.lines; i++) log.info('processed an item', { item: i, ok: true })
    return null
  },
})

type Case = { name: string; env: Record<string, string>; lines: number }

export async function runLogs(bench: Bench): Promise<Result> {
  const db = await createStewardDatabase(bench, 'bench_run_logs')
  const cases: Case[] = [
    { name: `${LINES} lines, stored (default)`, env: {}, lines: LINES },
    { name: `${LINES} lines, run log off`, env: { RUN_LOG_MAX_LINES: '0' }, lines: LINES },
    { name: 'no lines', env: {}, lines: 0 },
  ]
  const medians = new Map<string, number>()
  for (const c of cases) {
    const app = await buildApp(stewardConfig(db.url, { SCHEDULER_ENABLED: 'false', ...c.env }), {
      jobs: [...benchJobs, logger],
    })
    await app.ready()
    try {
      const times: number[] = []
      for (let round = 0; round < ROUNDS + 1; round++) {
        const res = await app.inject({
          method: 'POST',
          url: '/jobs/bench-logger/runs',
          headers: AUTH,
          payload: { args: { lines: c.lines } },
        })
        const id = res.json<Run>().id
        let run: Run
        for (;;) {
          run = (
            await app.inject({ url: `/runs/${id}`, headers: { ...AUTH, 'cache-control': 'no-cache' } })
          ).json()
          if (run.state !== 'queued' && run.state !== 'running') break
          await sleep(10)
        }
        if (run.state !== 'succeeded') throw new Error(`run ${id} ${run.state}: ${JSON.stringify(run.error)}`)
        // The first round warms up.
        if (round > 0) times.push(run.durationMs ?? Number.NaN)
      }
      medians.set(c.name, median(times))
      log(`run-logs: ${c.name}: median ${ms(median(times))} (${times.join(', ')} ms)`)
    } finally {
      await app.close()
    }
  }
  const [stored, off, none] = cases.map((c) => medians.get(c.name) as number) as [number, number, number]
  const ratio = round(stored / off, 2)
  const rows = cases.map((c) => [c.name, ms(medians.get(c.name) as number)])
  const perLine = round(((stored - off) / LINES) * 1000, 1)
  return {
    name: 'run log cost',
    measured: `${LINES} lines: ${ms(stored)} stored vs ${ms(off)} off (× ${ratio}); no lines ${ms(none)}`,
    goal: 'reported',
    verdict: 'reported',
    section: [
      `A job writing ${LINES} lines through \`ctx.log\` (each with two fields), one run at a time, median of ${ROUNDS} runs after one`,
      'to warm up; run time is the run’s `startedAt → finishedAt`, which includes writing its last batch.',
      '',
      table(['case', 'run time (median)'], rows),
      '',
      `Storing the lines costs × ${ratio} the run time of the same job with the run log off, about ${perLine} µs a line`,
      `(batches of up to 2,000 lines, one insert every 250 ms at most). The process log (pino) ran at \`warn\` in`,
      'every case, so its cost is not in these figures.',
    ].join('\n'),
  }
}
