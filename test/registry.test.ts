import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildTestApp, eventually } from './helper.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/registry', import.meta.url))

/** The fixture in a temporary directory, plus what must be skipped (not committable: git ignores it). */
async function fixtureTree(t: Test): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-registry-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  await fs.cp(FIXTURE, dir, { recursive: true })
  const put = async (rel: string, content: string | Buffer) => {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true })
    await fs.writeFile(path.join(dir, rel), content)
  }
  await put('node_modules/left-pad/index.js', "import x from '../../api/index.js'\n// TODO vendored\n")
  await put('node_modules/left-pad/package.json', '{"dependencies":{"evil":"1.0.0"}}\n')
  await put('ignored/secret.js', "import { find } from '../db/repo.js'\n// TODO hidden\n")
  await put('debug.log', 'TODO a log line\n')
  await put('dist/bundle.js', "import '../core/service.js'\n")
  await put('py/generated.py', 'import os\n# TODO generated\n')
  await put('assets/logo.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x0d, 0x0a, 0x1a]))
  await put('data/big.txt', `${'TODO counted nowhere\n'.repeat(110_000)}`)
  return dir
}

async function sync(t: Test, app: FastifyInstance) {
  const res = await app.inject({ method: 'POST', url: '/jobs/registry-sync/runs', payload: {} })
  t.equal(res.statusCode, 202, res.body)
  const id = res.json().id
  const run = await eventually(
    async () => {
      const r = (await app.inject(`/runs/${id}`)).json()
      return ['succeeded', 'failed'].includes(r.state) ? r : undefined
    },
    20_000,
    `registry-sync run ${id}`,
  )
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  return run
}

const byLanguage = (languages: Array<{ language: string; files: number; lines: number }>) =>
  Object.fromEntries(languages.map((l) => [l.language, [l.files, l.lines]]))

t.test('registry-sync snapshots a tree, then the diff after a change', async (t) => {
  const dir = await fixtureTree(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', REGISTRY_SOURCE_DIR: dir } })
  // Finished runs of another job: 1..10 s within the week (one failed), 100 s three weeks ago.
  await app.sql`
    insert into job_runs (job, trigger, state, started_at, finished_at)
    select 'fake-job', 'manual', case when i = 3 then 'failed' else 'succeeded' end,
           now() - interval '1 day', now() - interval '1 day' + i * interval '1 second'
    from generate_series(1, 10) i`
  await app.sql`
    insert into job_runs (job, trigger, state, started_at, finished_at)
    values ('fake-job', 'manual', 'succeeded', now() - interval '20 days',
            now() - interval '20 days' + interval '100 seconds')`

  t.equal((await app.inject('/registry/snapshots/latest')).statusCode, 404, 'no snapshot yet')
  t.same((await app.inject('/registry/snapshots')).json(), { items: [], nextCursor: null })

  const first = await sync(t, app)
  const snap = (await app.inject('/registry/snapshots/latest')).json()
  t.equal(snap.id, first.result.snapshotId)
  t.equal(snap.runId, first.id)
  t.equal(snap.sourceDir, dir)
  t.equal(snap.diff, null, 'the first snapshot has nothing to compare with')

  t.test('counts skip ignored, vendored, built and binary files', async (t) => {
    t.match(first.result, { files: 26, lines: 114, skipped: { binary: 1, tooLarge: 1 }, cycles: 1 })
    t.same(byLanguage(snap.quality.languages), {
      Elixir: [4, 25],
      JavaScript: [5, 20],
      TOML: [2, 16],
      JSON: [1, 11],
      Go: [2, 10],
      Python: [4, 10],
      TypeScript: [1, 4],
      Rust: [1, 3],
      Markdown: [1, 2],
    })
    t.equal(snap.quality.todoCount, 3, 'TODO/FIXME in analysed files only')
    t.match(snap.quality, { testFiles: 2, sourceFiles: 15, testRatio: 0.1333 })
    t.same(snap.quality.largestFiles[0], {
      path: 'data/big.txt',
      language: null,
      bytes: 2_310_000,
      lines: null,
    })
    const names = snap.architecture.modules.map((m: { name: string }) => m.name)
    for (const skipped of ['node_modules', 'ignored', 'dist', 'debug.log', 'assets'])
      t.notOk(names.includes(skipped))
    t.same(
      snap.architecture.modules.find((m: { name: string }) => m.name === 'py'),
      { name: 'py', files: 7 },
    )
  })

  t.test('import edges between modules in four languages, and the cycle', async (t) => {
    t.same(snap.architecture.edges, [
      { from: 'api', to: 'core', count: 1 },
      { from: 'core', to: 'db', count: 1 },
      { from: 'db', to: 'api', count: 1 },
      { from: 'gosvc', to: 'store', count: 1 },
      { from: 'web', to: 'lib', count: 2 },
    ])
    t.same(snap.architecture.cycles, [['api', 'core', 'db']])
  })

  t.test('dependencies of every manifest, with versions', async (t) => {
    const deps = snap.dependencies.map(
      (d: { manifest: string; name: string; version: string | null; kind: string }) =>
        `${d.manifest} ${d.name} ${d.version} ${d.kind}`,
    )
    t.same(deps, [
      'crates/Cargo.toml anyhow 1 prod',
      'crates/Cargo.toml insta 1.34 dev',
      'crates/Cargo.toml local null prod',
      'crates/Cargo.toml serde 1.0 prod',
      'go.mod github.com/google/uuid v1.6.0 prod',
      'go.mod golang.org/x/sync v0.7.0 prod',
      'mix.exs credo ~> 1.7 dev',
      'mix.exs ecto_sql ~> 3.10 prod',
      'mix.exs phoenix ~> 1.7 prod',
      'package.json fastify ^5.0.0 prod',
      'package.json postgres 3.4.9 prod',
      'package.json tap ^21.0.0 dev',
      'py/pyproject.toml pydantic >=2 prod',
      'py/pyproject.toml pytest ^8.0 dev',
      'py/requirements.txt flask >=2.0,<3 prod',
      'py/requirements.txt requests ==2.31.0 prod',
    ])
  })

  t.test('run trends per job over 7 and 30 days', async (t) => {
    const fake = snap.trends.jobs.find((j: { job: string }) => j.job === 'fake-job')
    t.same(fake, {
      job: 'fake-job',
      last7d: { runs: 10, succeeded: 9, failed: 1, p50Ms: 5500, p95Ms: 9550, failureRate: 0.1 },
      last30d: { runs: 11, succeeded: 10, failed: 1, p50Ms: 6000, p95Ms: 55000, failureRate: 0.0909 },
    })
  })

  t.test('after a change, the diff says what changed', async (t) => {
    const write = (rel: string, text: string) => fs.writeFile(path.join(dir, rel), text)
    await write('db/repo.js', 'export function find(id) {\n  return { id }\n}\n')
    await write(
      'api/health.js',
      "import { start } from './index.js'\n\nexport const health = () => start()\n",
    )
    await fs.mkdir(path.join(dir, 'jobs'))
    await write(
      'jobs/nightly.js',
      "import { serve } from '../core/service.js'\n\nexport const nightly = () => serve(0)\n",
    )
    await fs.rm(path.join(dir, 'util'), { recursive: true })
    const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8'))
    pkg.dependencies = { fastify: '^5.1.0' }
    await write('package.json', `${JSON.stringify(pkg, null, 2)}\n`)
    await fs.appendFile(path.join(dir, 'py/requirements.txt'), 'httpx==0.27.0\n')

    const second = await sync(t, app)
    t.match(second.result.diff, {
      previousId: snap.id,
      filesAdded: 2,
      filesRemoved: 1,
      modulesAdded: 1,
      modulesRemoved: 1,
      cyclesResolved: 1,
      cyclesAppeared: 0,
    })
    const latest = (await app.inject(`/registry/snapshots/${second.result.snapshotId}`)).json()
    const diff = latest.diff
    t.same(diff.languages, [
      { language: 'JSON', filesAdded: 0, filesRemoved: 0, linesAdded: 0, linesRemoved: 1 },
      { language: 'JavaScript', filesAdded: 2, filesRemoved: 0, linesAdded: 4, linesRemoved: 2 },
      { language: 'TypeScript', filesAdded: 0, filesRemoved: 1, linesAdded: 0, linesRemoved: 4 },
    ])
    t.same(diff.modules, { added: ['jobs'], removed: ['util'] })
    t.same(diff.edges, { added: [{ from: 'jobs', to: 'core' }], removed: [{ from: 'db', to: 'api' }] })
    t.same(diff.cycles, { appeared: [], resolved: [['api', 'core', 'db']] })
    t.same(
      diff.dependencies.added.map((d: { name: string; version: string }) => `${d.name} ${d.version}`),
      ['httpx ==0.27.0'],
    )
    t.same(
      diff.dependencies.removed.map((d: { name: string }) => d.name),
      ['postgres'],
    )
    t.same(diff.dependencies.changed, [
      { manifest: 'package.json', ecosystem: 'npm', name: 'fastify', from: '^5.0.0', to: '^5.1.0' },
    ])
    t.equal(latest.architecture.cycles.length, 0)
    const kept = await app.sql`select snapshot_id, count(*)::int as n from registry_files group by 1`
    t.same([...kept], [{ snapshotId: String(latest.id), n: 27 }], 'only the newest file list is kept')
    const own = latest.trends.jobs.find((j: { job: string }) => j.job === 'registry-sync')
    t.match(own.last7d, { runs: 1, succeeded: 1, failureRate: 0 }, 'the first sync is in the trends')
  })

  t.test('snapshots list newest first with keyset pagination; 404s and 400s', async (t) => {
    const page = (await app.inject('/registry/snapshots?limit=1')).json()
    t.equal(page.items.length, 1)
    t.ok(page.nextCursor)
    t.notOk('architecture' in page.items[0], 'list items carry the summary only')
    t.equal(page.items[0].summary.diff.previousId, snap.id)
    const next = (await app.inject(`/registry/snapshots?limit=1&cursor=${page.nextCursor}`)).json()
    t.same(
      next.items.map((s: { id: number }) => s.id),
      [snap.id],
    )
    t.equal(next.nextCursor, null)
    t.equal((await app.inject('/registry/snapshots/999999')).statusCode, 404)
    for (const url of [
      '/registry/snapshots/abc',
      '/registry/snapshots?limit=0',
      '/registry/snapshots?cursor=bm9wZQ',
    ]) {
      t.equal((await app.inject(url)).statusCode, 400, url)
    }
  })
})
