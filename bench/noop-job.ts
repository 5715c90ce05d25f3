// The benchmarks' own job, registered only by them: it does nothing, or (record) writes one row per
// execution to bench_executions, with the moment its body started, so a fire executed twice shows up
// however it came about.
import { Type } from 'typebox'
import { jobs } from '../src/app.js'
import { defineJob } from '../src/engine/job.js'

export const NOOP = 'bench-noop'

/** When each run's body started in this process (epoch ms), for the in-process benchmarks. */
export const bodyStarts = new Map<string, number>()

export const noopJob = defineJob({
  name: NOOP,
  description: 'Benchmark no-op: returns at once (record: also logs the execution in bench_executions)',
  args: Type.Object({ record: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  timeoutMs: 60_000,
  maxAttempts: 1,
  // Many may run at once, as for a job meant to fan out; each process still runs at most
  // MAX_CONCURRENT_RUNS (8 by default) and the rest wait queued: the limits are on.
  concurrency: 100,
  run: async (ctx) => {
    const started = Date.now()
    bodyStarts.set(ctx.runId, started)
    if (ctx.args.record) {
      await ctx.sql`
        insert into bench_executions (run_id, instance, at)
        values (${ctx.runId}, ${ctx.config.instanceId}, ${new Date(started)})`
    }
    return null
  },
})

export const benchJobs = [...jobs, noopJob]

export const EXECUTIONS_TABLE = `create table if not exists bench_executions (
  run_id bigint not null, instance text not null, at timestamptz not null)`
