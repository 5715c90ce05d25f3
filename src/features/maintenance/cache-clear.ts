// cache-clear: removes stale analysis cache rows (the seed's `mix analyze.cache clear`).
// Deletes in batches so a large purge never holds a long lock or one huge transaction.
import type { PendingQuery, Row, Sql } from 'postgres'
import { Type } from 'typebox'
import { cancellable, defineJob } from '../../engine/job.js'

export const cacheClear = defineJob({
  name: 'cache-clear',
  description:
    'Deletes expired rows from analysis_cache in batches; {"all": true} empties the cache entirely.',
  args: Type.Object(
    {
      all: Type.Optional(Type.Boolean({ description: 'Delete every cache row, not only expired ones.' })),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 10 * 60_000,
  maxAttempts: 1,
  schedules: [{ name: 'cache-clear', cron: '0 3 * * *' }],
  async run({ args, sql, signal, config, log, progress }) {
    const batch = config.cacheClearBatch
    const all = args.all === true
    const which = () => (all ? sql`true` : sql`expires_at <= now()`)
    const total = await countUpTo(sql, which())
    log.info('clearing the cache', { mode: all ? 'all' : 'expired', rows: total, batchSize: batch })
    let deleted = 0
    let batches = 0
    progress({ done: 0, total, unit: 'rows' })
    for (;;) {
      const rows = await cancellable(
        sql`
        delete from analysis_cache
        where ctid = any(array(
          select ctid from analysis_cache
          where ${which()}
          limit ${batch}
          for update skip locked
        ))
        returning 1`,
        signal,
      )
      deleted += rows.length
      batches += 1
      log.info('batch deleted', { batch: batches, rows: rows.length, deleted })
      progress({ done: deleted, total: total === null ? null : Math.max(total, deleted), unit: 'rows' })
      if (rows.length < batch) break
    }
    const [remaining] = await sql<{ count: number }[]>`select count(*)::int as count from analysis_cache`
    log.info('cache cleared', { deleted, batches, remaining: remaining?.count })
    return { deleted, batches, remaining: remaining?.count ?? 0, mode: all ? 'all' : 'expired' }
  },
})

/** Rows counted for the progress total only up to this many: past it the total is unknown. */
const COUNT_CAP = 1_000_000

/**
 * The rows a clear will delete, when they are cheap to count; else null. The count gives up at
 * once behind a lock (the delete that follows waits there instead, cancellably) and after a second.
 */
async function countUpTo(sql: Sql, which: PendingQuery<Row[]>): Promise<number | null> {
  try {
    return await sql.begin(async (tx) => {
      await tx`set local lock_timeout = '100ms'`
      await tx`set local statement_timeout = '1s'`
      const [row] = await tx<{ count: number }[]>`
        select count(*)::int as count from (select 1 from analysis_cache where ${which} limit ${COUNT_CAP}) c`
      const count = row?.count ?? 0
      return count < COUNT_CAP ? count : null
    })
  } catch (err) {
    // lock_not_available, query_canceled (the timeout): no total, the run goes on.
    if (['55P03', '57014'].includes((err as { code?: string }).code ?? '')) return null
    throw err
  }
}
