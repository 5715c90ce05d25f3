// Template embeddings with pgvector (a `vector` column, cosine distance in SQL) and without it
// (real[]): the same results either way, existing vectors moved when pgvector arrives, and a role
// that may not create the extension carries on with real[]. pgvector comes from scripts/pgvector.sh
// (.ci/run runs it); without it these tests are skipped, except in CI, where they must run.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/templates/', import.meta.url))
const QUERIES = ['canary release rollout', 'pancakes batter eggs', 'incident postmortem timeline']

interface Hit {
  id: number
  path: string
  score: number
}

async function pgvectorOffered(): Promise<boolean> {
  const url = await createTestDatabase(t)
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    return (await sql`select 1 from pg_available_extensions where name = 'vector'`).length > 0
  } finally {
    await sql.end()
  }
}

async function templatesDir(t: Test): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-pgvector-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  await fs.cp(FIXTURE, dir, { recursive: true })
  return dir
}

async function runJob(app: FastifyInstance, job: string, args: object = {}) {
  const { id } = (await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })).json()
  const run = await eventually(
    async () => {
      const r = (await app.inject(`/runs/${id}`)).json()
      return ['succeeded', 'failed', 'cancelled'].includes(r.state) ? r : undefined
    },
    10_000,
    `${job} to end`,
  )
  if (run.state !== 'succeeded') throw new Error(`${job} ${run.state}: ${JSON.stringify(run.error)}`)
  return run
}

async function storages(app: FastifyInstance): Promise<string[]> {
  const { items } = (await app.inject('/templates?limit=100')).json()
  return items.map((i: { embedding: { storage: string } | null }) => i.embedding?.storage ?? 'none')
}

async function searches(app: FastifyInstance): Promise<Hit[][]> {
  const out: Hit[][] = []
  for (const q of QUERIES) {
    const res = await app.inject(`/templates/search?q=${encodeURIComponent(q)}&limit=10`)
    if (res.statusCode !== 200) throw new Error(`search ${q}: ${res.statusCode} ${res.body}`)
    out.push(res.json().items.map(({ id, path, score }: Hit) => ({ id, path, score })))
  }
  return out
}

/** Scores agree to rounding (float4 storage either way, summed in a different order). */
function sameRanking(t: Test, actual: Hit[][], expected: Hit[][], message: string) {
  t.same(
    actual.map((hits) => hits.map((h) => h.path)),
    expected.map((hits) => hits.map((h) => h.path)),
    `${message}: same order`,
  )
  const worst = Math.max(
    0,
    ...actual.flatMap((hits, i) =>
      hits.map((h, j) => Math.abs(h.score - (expected[i]?.[j]?.score ?? Number.NaN))),
    ),
  )
  t.ok(worst < 1e-5, `${message}: same scores (largest difference ${worst})`)
}

t.test('pgvector', async (t) => {
  if (!(await pgvectorOffered())) {
    if (process.env.CI) t.fail('pgvector is not installed on the test server: run scripts/pgvector.sh')
    else t.comment('skipped: pgvector is not installed on the test server (scripts/pgvector.sh installs it)')
    return
  }

  t.test('vector and real[] storage give the same search results', async (t) => {
    const dir = await templatesDir(t)
    const env = { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir }
    const withVector = await buildTestApp(t, { env })
    const withArray = await buildTestApp(t, { env: { ...env, PGVECTOR: 'off' } })
    for (const app of [withVector, withArray]) {
      await runJob(app, 'template-sync')
      t.match((await runJob(app, 'template-embed')).result, { embedded: 4, failed: 0, dimensions: 384 })
    }
    t.same(await storages(withVector), ['vector', 'vector', 'vector', 'vector'])
    t.same(await storages(withArray), ['real[]', 'real[]', 'real[]', 'real[]'])
    const [column] = await withVector.sql<{ type: string }[]>`
      select format_type(atttypid, atttypmod) as type from pg_attribute
      where attrelid = 'template_embeddings'::regclass and attname = 'embedding_vector'`
    t.equal(column?.type, 'vector', 'a real pgvector column')
    const [{ n } = { n: -1 }] = await withArray.sql<{ n: number }[]>`
      select count(*)::int as n from pg_extension where extname = 'vector'`
    t.equal(n, 0, 'PGVECTOR=off creates nothing')
    const vectorHits = await searches(withVector)
    sameRanking(t, vectorHits, await searches(withArray), 'vector vs real[]')
    t.equal(
      vectorHits[0]?.[0]?.path,
      'deploy-checklist.md',
      'the template sharing the query words ranks first',
    )

    // A zero vector (a template with no words) scores 0 rather than NaN, which would sort first.
    await withVector.sql`
      update template_embeddings set embedding_vector = array_fill(0::real, array[384])::real[]::vector
      where template_id = (select id from templates where path = 'deploy-checklist.md')`
    const hits = (await searches(withVector))[0] as Hit[]
    t.equal(hits.find((h) => h.path === 'deploy-checklist.md')?.score, 0, 'a zero vector scores 0')

    // Re-embedding writes the vector column again, and the check keeps one of the two filled.
    t.match((await runJob(withVector, 'template-embed', { missing: false })).result, { embedded: 4 })
    sameRanking(t, await searches(withVector), vectorHits, 're-embedded')
    await t.rejects(
      withVector.sql`update template_embeddings set embedding = array_fill(0::real, array[384])`,
      { code: '23514' },
      'a row cannot hold both kinds',
    )
  })

  t.test('vectors stored as real[] move to the vector column when pgvector is enabled', async (t) => {
    const dir = await templatesDir(t)
    const databaseUrl = await createTestDatabase(t)
    const env = { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: dir }
    const before = await buildTestApp(t, { databaseUrl, env: { ...env, PGVECTOR: 'off' } })
    await runJob(before, 'template-sync')
    await runJob(before, 'template-embed')
    const expected = await searches(before)

    const after = await buildTestApp(t, { databaseUrl, env })
    t.same(await storages(after), ['vector', 'vector', 'vector', 'vector'])
    sameRanking(t, await searches(after), expected, 'after the move')
    // The instance that started before pgvector was enabled writes and reads the new column too.
    t.match((await runJob(before, 'template-embed', { missing: false })).result, { embedded: 4, failed: 0 })
    t.same(await storages(before), ['vector', 'vector', 'vector', 'vector'], 'an older instance follows')
    sameRanking(t, await searches(before), expected, 'searched from the older instance')
    const again = await buildTestApp(t, { databaseUrl, env })
    t.same(await storages(again), ['vector', 'vector', 'vector', 'vector'], 'a second start changes nothing')
  })

  t.test('a role that may not create the extension keeps real[]', async (t) => {
    const adminUrl = await createTestDatabase(t)
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
    const role = `steward_plain_${process.pid}`
    const database = new URL(adminUrl).pathname.slice(1)
    await admin.unsafe(`create role ${role} login password 'plain-pass'`)
    await admin.unsafe(`alter database ${database} owner to ${role}`)
    // The cloned tables belong to the admin; hand them over, as a DBA would for Steward's own role.
    for (const { tablename } of await admin<{ tablename: string }[]>`
      select tablename from pg_tables where schemaname = 'public'`)
      await admin.unsafe(`alter table ${tablename} owner to ${role}`)
    await admin.unsafe(`alter schema public owner to ${role}`)
    t.teardown(async () => {
      // The role owns the database: drop that first (its own teardown then finds nothing to do).
      await admin.end()
      const server = postgres(adminUrl.replace(`/${database}`, '/postgres'), { max: 1, onnotice: () => {} })
      await server.unsafe(`drop database if exists ${database} with (force)`)
      await server.unsafe(`drop role if exists ${role}`)
      await server.end()
    })
    const url = new URL(adminUrl)
    url.username = role
    url.password = 'plain-pass'
    const app = await buildTestApp(t, {
      databaseUrl: url.toString(),
      env: { SCHEDULER_ENABLED: 'false', TEMPLATES_DIR: await templatesDir(t) },
    })
    await runJob(app, 'template-sync')
    await runJob(app, 'template-embed')
    t.same(await storages(app), ['real[]', 'real[]', 'real[]', 'real[]'])
    t.equal((await searches(app))[0]?.[0]?.path, 'deploy-checklist.md')
  })
})
