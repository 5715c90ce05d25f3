// What the maintenance, template and registry jobs write in their runs' logs, read back through
// GET /runs/{id}/logs, and the progress each reports: template-sync names the files it added,
// updated, removed and skipped (the first 200 of each); template-embed its batches, the provider's
// retries and errors; cache-clear and prune-runs their batches and rows; registry-sync its phases.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildTestApp, eventually } from './helper.js'
import { startEmbeddingsStub } from './support/embeddings-stub.js'

interface LogLine {
  seq: number
  level: string
  message: string
  fields: Record<string, unknown> | null
}

interface Run {
  id: number
  state: string
  result: Record<string, unknown> | null
  error: { code: string; message: string } | null
  progress: { done: number; total: number | null; unit: string } | null
}

const ENV = { SCHEDULER_ENABLED: 'false', RUN_POLL_MS: '100' }

async function runJob(app: FastifyInstance, job: string, args: object = {}): Promise<Run> {
  const res = await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })
  if (res.statusCode !== 202) throw new Error(`trigger ${job}: ${res.statusCode} ${res.body}`)
  const id = res.json().id
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json<Run>()
      return ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined
    },
    20_000,
    `${job} run ${id} to end`,
  )
}

async function logOf(app: FastifyInstance, id: number): Promise<LogLine[]> {
  const lines: LogLine[] = []
  for (let after = 0; ; ) {
    const page = (await app.inject(`/runs/${id}/logs?after=${after}&limit=1000`)).json()
    lines.push(...page.items)
    if (page.nextCursor === null) return lines
    after = Number(page.nextCursor)
  }
}

const named = (lines: LogLine[], message: string) => lines.filter((l) => l.message === message)
const fieldsOf = (lines: LogLine[], message: string) => named(lines, message).map((l) => l.fields)

async function tempDir(t: Test, prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  return dir
}

const note = (i: number) => `note-${String(i).padStart(3, '0')}.md`

t.test('template-sync names the files it added, updated, removed and skipped', async (t) => {
  const dir = await tempDir(t, 'steward-templates-')
  for (let i = 1; i <= 205; i++) await fs.writeFile(path.join(dir, note(i)), `# Note ${i}\n\nBody ${i}.`)
  await fs.writeFile(path.join(dir, 'broken.json'), '{ not json')
  const app = await buildTestApp(t, { env: { ...ENV, TEMPLATES_DIR: dir } })

  const first = await runJob(app, 'template-sync')
  t.equal(first.state, 'succeeded', JSON.stringify(first.error))
  t.match(first.progress, { done: 206, total: 206, unit: 'files' })
  const lines = await logOf(app, first.id)
  const added = fieldsOf(lines, 'template added').map((f) => f?.path)
  t.same(
    added,
    Array.from({ length: 200 }, (_, i) => note(i + 1)),
    'the first 200 named, in order',
  )
  t.same(fieldsOf(lines, 'more templates added'), [{ more: 5, total: 205 }], 'the rest counted')
  t.match(named(lines, 'template file skipped'), [
    { level: 'warn', fields: { path: 'broken.json', reason: /unreadable|json|JSON/ } },
  ])
  t.match(fieldsOf(lines, 'templates synced'), [{ added: 205, updated: 0, removed: 0, warnings: 1 }])

  await fs.writeFile(path.join(dir, note(7)), '# Note 7\n\nRewritten.')
  await fs.rm(path.join(dir, note(9)))
  const second = await runJob(app, 'template-sync', { force: true })
  t.equal(second.state, 'succeeded', JSON.stringify(second.error))
  const changes = await logOf(app, second.id)
  t.same(fieldsOf(changes, 'template updated'), [{ path: note(7) }], 'only the file whose content changed')
  t.same(fieldsOf(changes, 'template removed'), [{ path: note(9) }])
  t.same(fieldsOf(changes, 'template added'), [])
  t.match(fieldsOf(changes, 'templates synced'), [{ added: 0, updated: 204, rewritten: 203, removed: 1 }])
})

t.test('template-embed reports its batches, the retries and the batch that failed', async (t) => {
  const stub = await startEmbeddingsStub(t)
  const dir = await tempDir(t, 'steward-templates-')
  for (let i = 1; i <= 5; i++) await fs.writeFile(path.join(dir, note(i)), `# Note ${i}\n\nBody ${i}.`)
  const app = await buildTestApp(t, {
    env: {
      ...ENV,
      TEMPLATES_DIR: dir,
      EMBEDDINGS_URL: stub.url,
      EMBEDDINGS_MODEL: 'stub',
      EMBEDDINGS_BATCH: '2',
    },
  })
  t.equal((await runJob(app, 'template-sync')).state, 'succeeded')

  // The first batch gets a 429, then a malformed reply; the other two batches succeed.
  stub.queue.push({ status: 429, headers: { 'retry-after': '0' } }, { body: { data: 'nope' } })
  const run = await runJob(app, 'template-embed')
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  t.match(run.progress, { done: 5, total: 5, unit: 'templates' })
  const lines = await logOf(app, run.id)
  t.match(fieldsOf(lines, 'embedding templates'), [
    { templates: 5, batches: 3, model: 'stub', provider: 'http' },
  ])
  t.match(named(lines, 'embeddings server failed; retrying'), [
    { level: 'warn', fields: { batch: 1, attempt: 1, maxAttempts: 5, delayMs: 0, reason: 'HTTP 429' } },
  ])
  t.match(named(lines, 'embedding batch failed'), [
    { level: 'error', fields: { batch: 1, templates: 2, err: { message: /malformed/ } } },
  ])
  t.match(fieldsOf(lines, 'batch embedded'), [
    { batch: 2, of: 3, templates: 2, seconds: Number },
    { batch: 3, of: 3, templates: 1, seconds: Number },
  ])
  t.match(fieldsOf(lines, 'templates embedded'), [{ embedded: 3, failed: 2, skipped: 0 }])
})

t.test('cache-clear reports each batch and the rows it deleted, against a count', async (t) => {
  const app = await buildTestApp(t, { env: { ...ENV, CACHE_CLEAR_BATCH: '10' } })
  await app.sql`
    insert into analysis_cache (key, value, expires_at)
    select 'k' || i, '{}', case when i <= 25 then now() - interval '1 hour' else now() + interval '1 day' end
    from generate_series(1, 28) i`
  const run = await runJob(app, 'cache-clear')
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  t.match(run.progress, { done: 25, total: 25, unit: 'rows' })
  const lines = await logOf(app, run.id)
  t.match(fieldsOf(lines, 'clearing the cache'), [{ mode: 'expired', rows: 25, batchSize: 10 }])
  t.same(fieldsOf(lines, 'batch deleted'), [
    { batch: 1, rows: 10, deleted: 10 },
    { batch: 2, rows: 10, deleted: 20 },
    { batch: 3, rows: 5, deleted: 25 },
  ])
  t.same(fieldsOf(lines, 'cache cleared'), [{ deleted: 25, batches: 3, remaining: 3 }])
})

t.test('cache-clear goes on without a total when counting would wait for a lock', async (t) => {
  const app = await buildTestApp(t, { env: ENV })
  await app.sql`
    insert into analysis_cache (key, value, expires_at)
    select 'k' || i, '{}', now() - interval '1 hour' from generate_series(1, 4) i`
  const holder = await app.sql.reserve()
  t.teardown(() => holder.release())
  await holder`begin`
  await holder`lock table analysis_cache in access exclusive mode`
  const res = await app.inject({ method: 'POST', url: '/jobs/cache-clear/runs', payload: {} })
  await eventually(async () => {
    const [waiting] = await app.sql`
      select 1 from pg_stat_activity where query like '%delete from analysis_cache%' and wait_event_type = 'Lock'`
    return waiting ? true : undefined
  })
  await holder`rollback`
  const run = await eventually(async () => {
    const read = (await app.inject(`/runs/${res.json().id}`)).json<Run>()
    return read.state === 'succeeded' ? read : undefined
  })
  t.match(run.progress, { done: 4, total: null, unit: 'rows' })
  t.match(fieldsOf(await logOf(app, run.id), 'clearing the cache'), [{ rows: null }])
})

t.test('prune-runs reports the rows of each batch and the total', async (t) => {
  const app = await buildTestApp(t, { env: ENV })
  await app.sql`
    insert into job_runs (job, trigger, state, args, started_at, finished_at)
    select 'sleeper', 'manual', 'succeeded', '{}', now() - interval '40 days', now() - interval '40 days'
    from generate_series(1, 7)`
  const run = await runJob(app, 'prune-runs', { batchSize: 3 })
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  const lines = await logOf(app, run.id)
  t.match(fieldsOf(lines, 'pruning runs'), [{ olderThanDays: 30, keptPerSchedule: 100, batchSize: 3 }])
  t.same(
    fieldsOf(lines, 'batch deleted').map((f) => f?.rows),
    [3, 3, 1],
  )
  t.same(fieldsOf(lines, 'runs pruned'), [{ deleted: 7, batches: 3, olderThanDays: 30 }])
  t.match(run.progress, { done: 7, unit: 'runs' })
})

t.test('registry-sync says each phase and counts the files it analysed', async (t) => {
  const source = fileURLToPath(new URL('./fixtures/registry/', import.meta.url))
  const app = await buildTestApp(t, { env: { ...ENV, REGISTRY_SOURCE_DIR: source } })
  const first = await runJob(app, 'registry-sync')
  t.equal(first.state, 'succeeded', JSON.stringify(first.error))
  const files = first.result?.files as number
  t.ok(files > 10, 'the fixture tree has files')
  t.match(first.progress, { total: first.progress?.done, unit: 'files' })
  t.ok((first.progress?.done ?? 0) >= files, 'every file walked is counted')
  const lines = await logOf(app, first.id)
  t.same(
    lines
      .filter(
        (l) => l.level === 'info' && /^(analys|source|run trends|first|compared|registry)/.test(l.message),
      )
      .map((l) => l.message),
    [
      'analysing the source tree',
      'source tree analysed',
      'run trends computed',
      'first snapshot of this directory: nothing to compare with',
      'registry snapshot stored',
    ],
  )
  t.match(fieldsOf(lines, 'source tree analysed'), [{ files, lines: Number, seconds: Number }])
  t.match(fieldsOf(lines, 'registry snapshot stored'), [{ snapshotId: first.result?.snapshotId, files }])

  const second = await runJob(app, 'registry-sync', { trends: false })
  const again = await logOf(app, second.id)
  t.same(fieldsOf(again, 'run trends skipped'), [null])
  t.match(fieldsOf(again, 'compared with the previous snapshot'), [{ previousId: first.result?.snapshotId }])
})
