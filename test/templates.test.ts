import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildTestApp, eventually } from './helper.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/templates/', import.meta.url))

interface Row {
  id: number
  path: string
  name: string
  format: string
  metadata: Record<string, unknown>
  sha256: string
  createdAt: string
  updatedAt: string
  syncedAt: string
  embedding: { model: string; dimensions: number; stale: boolean } | null
}

async function fixtureDir(t: Test): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-templates-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  await fs.cp(FIXTURE, dir, { recursive: true })
  return dir
}

/** Triggers a job through the API and waits for it to end; returns the finished run. */
async function runJob(app: FastifyInstance, job: string, args: object = {}, ms = 10_000) {
  const res = await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })
  if (res.statusCode !== 202) throw new Error(`trigger ${job}: ${res.statusCode} ${res.body}`)
  const id = res.json().id
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json()
      return ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined
    },
    ms,
    `${job} run ${id} to end`,
  )
}

async function byPath(app: FastifyInstance): Promise<Record<string, Row>> {
  const { items } = (await app.inject('/templates?limit=500')).json() as { items: Row[] }
  return Object.fromEntries(items.map((row) => [row.path, row]))
}

t.test('template-sync makes the table match the directory', async (t) => {
  const dir = await fixtureDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir } })

  const first = await runJob(app, 'template-sync')
  t.equal(first.state, 'succeeded', JSON.stringify(first.error))
  t.same(first.result, { added: 4, updated: 0, unchanged: 0, removed: 0, warnings: [] })
  const initial = await byPath(app)
  t.same(Object.keys(initial).sort(), [
    'deploy-checklist.md',
    'guides/kitchen-recipe.json',
    'guides/plain-notes.md',
    'invoice-reminder.yaml',
  ])
  const deploy = initial['deploy-checklist.md'] as Row
  t.match(deploy, { name: 'Deploy checklist', format: 'markdown', embedding: null })
  t.same(deploy.metadata, { title: 'Deploy checklist', tags: ['deploy', 'release'], owner: 'platform' })
  t.match(initial['guides/kitchen-recipe.json'], {
    name: 'Pancake recipe',
    format: 'json',
    metadata: { title: 'Pancake recipe', servings: 4 },
  })
  t.match(initial['invoice-reminder.yaml'], { name: 'Invoice reminder', format: 'yaml' })
  t.equal(initial['guides/plain-notes.md']?.name, 'plain-notes', 'no front matter: the file name')

  const one = (await app.inject(`/templates/${deploy.id}`)).json()
  t.match(one.body, /^# Deploy checklist\n\nRun the migrations/, 'the body is the text after front matter')
  t.notOk('body' in deploy, 'lists leave the body out')
  const yaml = (await app.inject(`/templates/${initial['invoice-reminder.yaml']?.id}`)).json()
  t.match(yaml.body, /^Your invoice \{\{number\}\} is due/)
  t.notOk('body' in yaml.metadata, 'the body field is not repeated in metadata')

  const again = await runJob(app, 'template-sync')
  t.same(again.result, { added: 0, updated: 0, unchanged: 4, removed: 0, warnings: [] })
  t.same(await byPath(app), initial, 'an unchanged directory leaves every row untouched')

  await fs.appendFile(path.join(dir, 'deploy-checklist.md'), '\nRoll back if the canary fails.\n')
  await fs.rm(path.join(dir, 'invoice-reminder.yaml'))
  await fs.writeFile(path.join(dir, 'guides', 'broken.yaml'), 'name: [unclosed\n')
  await fs.writeFile(path.join(dir, 'bad-front.md'), '---\ntitle: [oops\n---\nbody\n')
  await fs.writeFile(path.join(dir, 'guides', 'kitchen-recipe.json'), '{"title": "Pancake recipe",')
  await fs.writeFile(path.join(dir, 'list.json'), '[1, 2]')
  await fs.writeFile(path.join(dir, 'notes.txt'), 'not a template format')
  const changed = await runJob(app, 'template-sync')
  t.equal(changed.state, 'succeeded', 'parse errors do not fail the run')
  const { warnings, ...counts } = changed.result
  t.same(counts, { added: 0, updated: 1, unchanged: 1, removed: 1 })
  t.same(
    warnings.map((w: { path: string }) => w.path),
    ['bad-front.md', 'guides/broken.yaml', 'guides/kitchen-recipe.json', 'list.json'],
  )
  for (const w of warnings) t.match(w.reason, /invalid (YAML|JSON|front matter)|object at the top level/)

  const after = await byPath(app)
  t.same(Object.keys(after).sort(), [
    'deploy-checklist.md',
    'guides/kitchen-recipe.json',
    'guides/plain-notes.md',
  ])
  t.same(
    after['guides/kitchen-recipe.json'],
    initial['guides/kitchen-recipe.json'],
    'a file that no longer parses keeps its last good row',
  )
  t.same(after['guides/plain-notes.md'], initial['guides/plain-notes.md'], 'unchanged row untouched')
  const updated = after['deploy-checklist.md'] as Row
  t.equal(updated.id, deploy.id, 'identity is the path')
  t.equal(updated.createdAt, deploy.createdAt)
  t.ok(updated.updatedAt > deploy.updatedAt, 'a changed row gets a new updatedAt')
  t.not(updated.sha256, deploy.sha256)
  t.match((await app.inject(`/templates/${deploy.id}`)).json().body, /Roll back if the canary fails/)

  const forced = await runJob(app, 'template-sync', { force: true })
  t.same(forced.result.updated, 2, 'force rewrites every parsed row')
  t.same(forced.result.unchanged, 0)
  const rewritten = await byPath(app)
  t.ok(
    (rewritten['guides/plain-notes.md'] as Row).updatedAt > (after['guides/plain-notes.md'] as Row).updatedAt,
  )
})

t.test('a sync that fails part-way leaves the table as it was', async (t) => {
  const dir = await fixtureDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir } })
  t.equal((await runJob(app, 'template-sync')).state, 'succeeded')
  const before = await byPath(app)
  // A database-side failure on one row, after other rows were already written in the transaction.
  await app.sql.unsafe(`
    create function refuse_template() returns trigger language plpgsql as $$
    begin raise exception 'refusing %', new.path; end $$;
    create trigger refuse before insert on templates for each row
      when (new.path like 'zz-%') execute function refuse_template();`)
  await fs.appendFile(path.join(dir, 'deploy-checklist.md'), '\nchanged\n')
  await fs.rm(path.join(dir, 'guides', 'plain-notes.md'))
  await fs.writeFile(path.join(dir, 'a-new.md'), '# new\n')
  await fs.writeFile(path.join(dir, 'zz-refused.md'), '# refused\n')
  const failed = await runJob(app, 'template-sync')
  t.equal(failed.state, 'failed')
  t.match(failed.error.message, /refusing zz-refused\.md/)
  t.same(await byPath(app), before, 'no insert, update or delete survived')
})

t.test('a missing TEMPLATES_DIR fails the run with a clear code', async (t) => {
  const missing = path.join(os.tmpdir(), `steward-no-such-dir-${process.pid}`)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: missing } })
  const run = await runJob(app, 'template-sync')
  t.equal(run.state, 'failed')
  t.equal(run.error.code, 'templates_dir_missing')
  t.match(run.error.message, missing)
  const jobs = (await app.inject('/jobs')).json().items as Array<{ name: string; schedules: string[] }>
  t.same(
    jobs.find((j) => j.name === 'template-sync')?.schedules,
    ['template-sync'],
    'default schedule seeded',
  )
  t.same(jobs.find((j) => j.name === 'template-embed')?.schedules, ['template-embed'])
  const schedule = (await app.inject('/schedules/template-embed')).json()
  t.same(schedule.args, { missing: true })
})

t.test('template-embed (local) and search', async (t) => {
  const dir = await fixtureDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir } })
  await runJob(app, 'template-sync')

  const embedded = await runJob(app, 'template-embed', { missing: true })
  t.equal(embedded.state, 'succeeded', JSON.stringify(embedded.error))
  t.match(embedded.result, {
    embedded: 4,
    skipped: 0,
    failed: 0,
    model: 'steward-lexical-v1',
    provider: 'local',
    dimensions: 384,
  })
  const [row] = await app.sql<{ n: number; dims: number }[]>`
    select count(*)::int as n, max(dimensions)::int as dims from template_embeddings`
  t.same(row, { n: 4, dims: 384 })
  for (const item of (await app.inject('/templates')).json().items)
    t.match(item.embedding, { model: 'steward-lexical-v1', dimensions: 384, storage: /^(vector|real\[\])$/ })

  const search = await app.inject('/templates/search?q=canary%20release%20rollout&limit=3')
  t.equal(search.statusCode, 200, search.body)
  const hits = search.json()
  t.equal(hits.model, 'steward-lexical-v1')
  t.equal(hits.items.length, 3)
  t.equal(hits.items[0].path, 'deploy-checklist.md', 'the template sharing the query words ranks first')
  t.ok(hits.items[0].score > hits.items[1].score)
  t.ok(hits.items[0].score <= 1)
  const pancakes = (await app.inject('/templates/search?q=pancakes%20batter%20eggs')).json()
  t.equal(pancakes.items[0].path, 'guides/kitchen-recipe.json')

  t.same((await app.inject('/templates/search?q=%3F%21')).json().items, [], 'no words, no hits')

  const noop = await runJob(app, 'template-embed', { missing: true })
  t.match(noop.result, { embedded: 0, skipped: 4, failed: 0 })

  await fs.appendFile(path.join(dir, 'guides', 'plain-notes.md'), '\nHarvest the courgettes.\n')
  await runJob(app, 'template-sync')
  const stale = (await byPath(app))['guides/plain-notes.md'] as Row
  t.match(stale.embedding, { model: 'steward-lexical-v1', dimensions: 384, stale: true })
  const garden = (await app.inject('/templates/search?q=water%20the%20tomatoes')).json()
  t.match(
    garden.items[0],
    { path: 'guides/plain-notes.md', stale: true },
    'a stale vector is still searched, and says so',
  )
  const refresh = await runJob(app, 'template-embed')
  t.match(refresh.result, { embedded: 1, skipped: 3 }, 'only the stale one is re-embedded')
  t.equal(((await byPath(app))['guides/plain-notes.md'] as Row).embedding?.stale, false)
  const all = await runJob(app, 'template-embed', { missing: false })
  t.match(all.result, { embedded: 4, skipped: 0 })
})

t.test('template routes: pagination, 404 and bad input', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-templates-many-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  for (let i = 0; i < 7; i++) await fs.writeFile(path.join(dir, `t${i}.md`), `# template ${i}\n`)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir } })
  t.equal((await app.inject('/templates')).json().items.length, 0)
  await runJob(app, 'template-sync')

  const seen: string[] = []
  let cursor: string | null = null
  do {
    const url: string = `/templates?limit=3${cursor ? `&cursor=${cursor}` : ''}`
    const page = (await app.inject(url)).json()
    seen.push(...page.items.map((r: Row) => r.path))
    cursor = page.nextCursor
  } while (cursor)
  t.same(seen, ['t0.md', 't1.md', 't2.md', 't3.md', 't4.md', 't5.md', 't6.md'])

  const unknown = await app.inject('/templates/999999')
  t.equal(unknown.statusCode, 404)
  t.match(unknown.json().message, /template 999999 does not exist/)
  const empty = (await app.inject('/templates/search?q=template')).json()
  t.same(empty.items, [], 'nothing embedded yet: nothing found')
  for (const url of [
    '/templates/abc',
    '/templates/0',
    '/templates?limit=0',
    '/templates?limit=501',
    '/templates?cursor=bm9wZQ',
    '/templates/search',
    '/templates/search?q=',
    `/templates/search?q=${'x'.repeat(501)}`,
    '/templates/search?q=a&limit=501',
  ]) {
    t.equal((await app.inject(url)).statusCode, 400, url)
  }
})

t.test('the shipped templates_data example set syncs and embeds cleanly', async (t) => {
  const examples = fileURLToPath(new URL('../templates_data/', import.meta.url))
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: examples } })
  const sync = await runJob(app, 'template-sync', { force: true })
  t.same(sync.result, { added: 5, updated: 0, unchanged: 0, removed: 0, warnings: [] })
  const formats = Object.values(await byPath(app)).map((row) => row.format)
  t.same([...new Set(formats)].sort(), ['json', 'markdown', 'yaml'])
  t.match((await runJob(app, 'template-embed', { missing: true })).result, { embedded: 5, failed: 0 })
  const hits = (await app.inject('/templates/search?q=outage%20root%20cause&limit=3')).json()
  t.equal(hits.items[0].path, 'incident/postmortem.md')
})
