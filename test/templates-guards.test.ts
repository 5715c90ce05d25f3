// template-sync's guards: a sync that would delete all templates or more than half of them is
// refused (mass_delete_refused: nothing changed, no retry, a run_failed alert) unless its args say
// allowMassDelete; a template file's size is checked before any of it is read.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { MAX_TEMPLATE_BYTES, readTemplate } from '../src/features/templates/files.js'
import { isMassDelete } from '../src/features/templates/sync.js'
import { templateSync } from '../src/features/templates/template-sync.js'
import { buildTestApp, eventually } from './helper.js'
import { startReceiver } from './support/webhook-receiver.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/templates/', import.meta.url))

async function fixtureDir(t: Test): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-templates-guard-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  await fs.cp(FIXTURE, dir, { recursive: true })
  return dir
}

/** Empties the directory but keeps it: what an unmounted volume's mount point looks like. */
async function emptyDir(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir)) await fs.rm(path.join(dir, entry), { recursive: true })
}

/** Triggers a job through the API and waits for it to end; returns the finished run. */
async function runJob(app: FastifyInstance, job: string, args: object = {}) {
  const res = await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })
  if (res.statusCode !== 202) throw new Error(`trigger ${job}: ${res.statusCode} ${res.body}`)
  const id = res.json().id
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json()
      return ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined
    },
    10_000,
    `${job} run ${id} to end`,
  )
}

/** Every template row and embedding, as the database holds them. */
async function snapshot(app: FastifyInstance) {
  const templates = await app.sql`select id, path, sha256, updated_at, synced_at from templates order by id`
  const embeddings = await app.sql`select template_id, model, embedded_at from template_embeddings order by 1`
  return { templates: [...templates], embeddings: [...embeddings] }
}

t.test('which deletions are a mass delete', async (t) => {
  t.notOk(isMassDelete(0, 0), 'an empty table')
  t.notOk(isMassDelete(0, 10), 'nothing deleted')
  t.notOk(isMassDelete(1, 10), 'a few')
  t.notOk(isMassDelete(2, 4), 'exactly half')
  t.ok(isMassDelete(3, 4), 'more than half')
  t.ok(isMassDelete(4, 4), 'all')
  t.ok(isMassDelete(1, 1), 'the only template')
})

t.test('an emptied TEMPLATES_DIR does not wipe the templates or their embeddings', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const dir = await fixtureDir(t)
  const app = await buildTestApp(t, {
    env: {
      SCHEDULER_ENABLED: 'false',
      TEMPLATES_DIR: dir,
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_CHECK_MS: '100',
      ALERT_RETRY_BASE_MS: '100',
    },
  })
  t.equal((await runJob(app, 'template-sync')).state, 'succeeded')
  t.match((await runJob(app, 'template-embed')).result, { embedded: 4 })
  const before = await snapshot(app)
  t.equal(before.embeddings.length, 4)

  await emptyDir(dir)
  // The default schedule's own args: force must not let the sync through.
  const refused = await runJob(app, 'template-sync', { force: true })
  t.equal(refused.state, 'failed')
  t.equal(refused.error.code, 'mass_delete_refused')
  t.match(refused.error.message, /would delete 4 of 4 templates/)
  t.match(refused.error.message, /holds 0 template file/)
  t.match(refused.error.message, /\{"allowMassDelete": true\}/, 'says how to allow it')
  t.same(await snapshot(app), before, 'no row or embedding deleted, none rewritten by force')

  const alert = await eventually(
    async () => {
      const [row] = await app.sql<{ kind: string; runId: string }[]>`
        select kind, run_id from alerts where incident = ${`run-failed:${refused.id}`}`
      return row
    },
    15_000,
    'the run_failed alert',
  )
  t.same(alert, { kind: 'run_failed', runId: String(refused.id) }, 'the refusal is alerted')
  const delivered = await eventually(async () => receiver.delivered()[0], 15_000, 'the alert delivery')
  t.match(
    delivered.body.text,
    /of template-sync failed after 1 attempt\(s\): mass_delete_refused: template-sync would delete 4 of 4/,
  )

  // Half of them back: 2 of 4 deleted is not more than half.
  await fs.cp(FIXTURE, dir, { recursive: true })
  await fs.rm(path.join(dir, 'guides'), { recursive: true })
  const half = await runJob(app, 'template-sync')
  t.equal(half.state, 'succeeded', JSON.stringify(half.error))
  t.same(half.result, { added: 0, updated: 0, unchanged: 2, removed: 2, warnings: [] })
})

t.test('a partial mount (more than half gone) is refused too; allowMassDelete lets it through', async (t) => {
  const dir = await fixtureDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir } })
  t.equal((await runJob(app, 'template-sync')).state, 'succeeded')
  await runJob(app, 'template-embed')
  const before = await snapshot(app)

  // Three of four gone, while a new file and a changed one would be written: none of it is.
  await fs.rm(path.join(dir, 'guides'), { recursive: true })
  await fs.rm(path.join(dir, 'invoice-reminder.yaml'))
  await fs.appendFile(path.join(dir, 'deploy-checklist.md'), '\nchanged\n')
  await fs.writeFile(path.join(dir, 'new.md'), '# new\n')
  const refused = await runJob(app, 'template-sync')
  t.equal(refused.error?.code, 'mass_delete_refused')
  t.match(refused.error.message, /would delete 3 of 4 templates/)
  t.same(await snapshot(app), before, 'decided before writing: no insert or update either')

  const job = (await app.inject('/jobs/template-sync')).json()
  t.match(job.argsSchema.properties.allowMassDelete, { type: 'boolean', description: /mass_delete_refused/ })
  const bad = await app.inject({
    method: 'POST',
    url: '/jobs/template-sync/runs',
    payload: { args: { allowMassDelete: 'yes' } },
  })
  t.equal(bad.statusCode, 400, 'a boolean, validated on trigger')

  const allowed = await runJob(app, 'template-sync', { allowMassDelete: true })
  t.equal(allowed.state, 'succeeded', JSON.stringify(allowed.error))
  t.same(allowed.result, { added: 1, updated: 1, unchanged: 0, removed: 3, warnings: [] })
  const after = await snapshot(app)
  t.same(
    after.templates.map((r) => r.path),
    ['deploy-checklist.md', 'new.md'],
  )
  t.equal(after.embeddings.length, 1, 'the deleted templates took their embeddings with them')

  await emptyDir(dir)
  const all = await runJob(app, 'template-sync', { allowMassDelete: true })
  t.match(all.result, { removed: 2 })
  t.same((await snapshot(app)).templates, [])
  const again = await runJob(app, 'template-sync')
  t.equal(again.state, 'succeeded', 'an empty directory and an empty table: nothing to refuse')
  t.same(again.result, { added: 0, updated: 0, unchanged: 0, removed: 0, warnings: [] })
})

t.test('a refused sync is not retried, even when the job allows attempts', async (t) => {
  const dir = await fixtureDir(t)
  const app = await buildTestApp(t, {
    jobs: [{ ...templateSync, maxAttempts: 3 }],
    env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir, RETRY_BASE_MS: '0', RETRY_MAX_MS: '0' },
  })
  t.equal((await runJob(app, 'template-sync')).state, 'succeeded')
  await emptyDir(dir)
  const refused = await runJob(app, 'template-sync')
  t.equal(refused.error?.code, 'mass_delete_refused')
  t.equal(refused.maxAttempts, 3)
  // stop() waits for the execution's bookkeeping, which is where a retry would be queued.
  await app.runner.stop(5000)
  const runs = (await app.inject('/runs?job=template-sync')).json().items as Array<{ trigger: string }>
  t.same(
    runs.map((r) => r.trigger),
    ['manual', 'manual'],
    'no retry queued: another attempt would find the same empty directory',
  )
})

t.test('a template file is refused by its size before it is read', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-templates-size-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  await fs.writeFile(path.join(dir, 'limit.md'), 'x'.repeat(MAX_TEMPLATE_BYTES))
  await fs.writeFile(path.join(dir, 'over.md'), 'x'.repeat(MAX_TEMPLATE_BYTES + 1))
  // Sparse: 3 GiB that take no disk. Reading it whole would take 3 GiB of memory (more than a
  // Buffer can hold: fs.readFile rejects it), so only a size check can refuse it cleanly.
  const huge = await fs.open(path.join(dir, 'huge.json'), 'w')
  await huge.truncate(3 * 1024 ** 3)
  await huge.close()

  const limit = await readTemplate(dir, 'limit.md')
  t.equal(
    typeof limit === 'string' ? limit : limit.body.length,
    MAX_TEMPLATE_BYTES,
    'the limit itself is fine',
  )
  t.equal(await readTemplate(dir, 'over.md'), `larger than ${MAX_TEMPLATE_BYTES} bytes`)
  const started = process.memoryUsage().arrayBuffers
  t.equal(await readTemplate(dir, 'huge.json'), `larger than ${MAX_TEMPLATE_BYTES} bytes`)
  t.ok(process.memoryUsage().arrayBuffers - started < MAX_TEMPLATE_BYTES, 'nothing of it was read')

  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir } })
  const run = await runJob(app, 'template-sync')
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  t.same(run.result, {
    added: 1,
    updated: 0,
    unchanged: 0,
    removed: 0,
    warnings: [
      { path: 'huge.json', reason: `larger than ${MAX_TEMPLATE_BYTES} bytes` },
      { path: 'over.md', reason: `larger than ${MAX_TEMPLATE_BYTES} bytes` },
    ],
  })
})
