// cache-clear: removes stale analysis cache rows (the seed's `mix analyze.cache clear`).
// Deletes in batches so a large purge never holds a long lock or one huge transaction.
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
  async run({ args, sql, signal, config, log }) {
    const batch = config.cacheClearBatch
    const all = args.all === true
    let deleted = 0
    let batches = 0
    for (;;) {
      const rows = await cancellable(
        sql`
        delete from analysis_cache
        where ctid = any(array(
          select ctid from analysis_cache
          where ${all ? sql`true` : sql`expires_at <= now()`}
          limit ${batch}
          for update skip locked
        ))
        returning 1`,
        signal,
      )
      deleted += rows.length
      batches += 1
      if (rows.length < batch) break
    }
    const [remaining] = await sql<{ count: number }[]>`select count(*)::int as count from analysis_cache`
    log.info({ deleted, batches }, 'cache cleared')
    return { deleted, batches, remaining: remaining?.count ?? 0, mode: all ? 'all' : 'expired' }
  },
})
