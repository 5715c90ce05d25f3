// prune-runs: keeps job_runs from growing forever. Deletes finished runs older than
// RUNS_RETENTION_DAYS, always keeping the newest 100 of each schedule and never touching queued or
// running ones; in small batches, so no statement holds locks for long.
import { Type } from 'typebox'
import { cancellable, defineJob } from '../../engine/job.js'

/** The history a schedule always keeps, however old. */
const KEEP_PER_SCHEDULE = 100
const BATCH = 5000

export const pruneRuns = defineJob({
  name: 'prune-runs',
  description: `Deletes finished runs older than RUNS_RETENTION_DAYS (default 30), keeping the newest ${KEEP_PER_SCHEDULE} of each schedule.`,
  args: Type.Object(
    {
      olderThanDays: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 36_500,
          description: 'Overrides RUNS_RETENTION_DAYS for this run.',
        }),
      ),
      batchSize: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 100_000,
          default: BATCH,
          description: 'Rows deleted per statement.',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 30 * 60_000,
  maxAttempts: 2,
  // Not in the seed: keeps job_runs bounded (RUNS_RETENTION_DAYS).
  schedules: [{ name: 'prune-runs', cron: '30 0 * * *' }],
  // Deleting history younger than the configured retention is an admin's call.
  triggerAction: (args, config) =>
    (args.olderThanDays ?? config.runsRetentionDays) < config.runsRetentionDays
      ? 'runs.prune-below-retention'
      : 'runs.prune',
  async run({ args, sql, signal, config, log, progress }) {
    const days = args.olderThanDays ?? config.runsRetentionDays
    const batchSize = args.batchSize ?? BATCH
    log.info('pruning runs', { olderThanDays: days, keptPerSchedule: KEEP_PER_SCHEDULE, batchSize })
    let deleted = 0
    let batches = 0
    for (;;) {
      const rows = await cancellable(
        sql`
        with candidates as (
          select id from job_runs r
          where r.state in ('succeeded', 'failed', 'cancelled', 'skipped')
            and r.finished_at < now() - ${days} * interval '1 day'
            and (r.schedule is null or r.id < (
              select min(id) from (
                select id from job_runs k where k.schedule = r.schedule order by id desc limit ${KEEP_PER_SCHEDULE}
              ) newest
            ))
          order by r.id
          limit ${batchSize}
          for update skip locked
        )
        delete from job_runs where id in (select id from candidates)
        returning 1`,
        signal,
      )
      deleted += rows.length
      batches += 1
      log.info('batch deleted', { batch: batches, rows: rows.length, deleted })
      progress({ done: deleted, unit: 'runs' })
      if (rows.length < batchSize) break
    }
    log.info('runs pruned', { deleted, batches, olderThanDays: days })
    return { deleted, batches, olderThanDays: days, keptPerSchedule: KEEP_PER_SCHEDULE }
  },
})
