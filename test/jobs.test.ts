import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, eventually } from './helper.js'

async function waitForState(app: FastifyInstance, id: number, states: string[], ms = 5000) {
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json()
      return states.includes(run.state) ? run : undefined
    },
    ms,
    `run ${id} to reach ${states.join('|')}`,
  )
}

t.test('jobs and manual runs', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })

  t.test('lists registered jobs with schema, limits and schedules', async (t) => {
    const res = await app.inject('/jobs')
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.same(body.items.map((j: { name: string }) => j.name).sort(), testJobs.map((j) => j.name).sort())
    t.ok(body.items.some((j: { name: string }) => j.name === 'cache-clear'))
    t.equal(body.nextCursor, null)
    const cache = body.items.find((j: { name: string }) => j.name === 'cache-clear')
    t.same(cache.schedules, ['cache-clear'], 'the default schedule of a registered job is seeded')
    t.equal(cache.argsSchema.properties.all.type, 'boolean')
    t.equal(cache.maxAttempts, 1)
    t.equal((await app.inject('/jobs/cache-clear')).json().name, 'cache-clear')
    const missing = await app.inject('/jobs/nope')
    t.equal(missing.statusCode, 404)
    t.match(missing.json().message, /nope/)
  })

  t.test('a run goes queued → running → succeeded and records everything', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/jobs/sleeper/runs',
      payload: { args: { ms: 300, label: 'x' } },
    })
    t.equal(res.statusCode, 202, res.body)
    const queued = res.json()
    t.equal(queued.state, 'queued')
    t.equal(queued.trigger, 'manual')
    t.equal(res.headers.location, `/runs/${queued.id}`)
    t.same(queued.args, { ms: 300, label: 'x' })
    const running = await waitForState(app, queued.id, ['running'])
    t.ok(running.startedAt)
    t.equal(running.finishedAt, null)
    t.equal(running.instance, app.config.instanceId)
    const done = await waitForState(app, queued.id, ['succeeded'])
    t.same(done.result, { slept: 300, label: 'x' })
    t.equal(done.error, null)
    t.ok(done.durationMs >= 290, `durationMs ${done.durationMs}`)
    t.equal(done.durationMs, Date.parse(done.finishedAt) - Date.parse(done.startedAt))
  })

  t.test('defaults from the args schema are applied and stored', async (t) => {
    const run = (await app.inject({ method: 'POST', url: '/jobs/sleeper/runs' })).json()
    t.same(run.args, { ms: 0 })
    await waitForState(app, run.id, ['succeeded'])
    const emptyJson = await app.inject({
      method: 'POST',
      url: '/jobs/sleeper/runs',
      headers: { 'content-type': 'application/json' },
      payload: '',
    })
    t.equal(emptyJson.statusCode, 202, 'an empty JSON body is no body')
    await waitForState(app, emptyJson.json().id, ['succeeded'])
  })

  t.test('bad args are a 400 naming the field', async (t) => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['cache-clear', { all: 'yes' }, /args\.all must be of type boolean/],
      ['cache-clear', { everything: true }, /args has unknown field\(s\): everything/],
      ['sleeper', { ms: -1 }, /args\.ms must be >= 0/],
      ['sleeper', 'not-an-object', /args/],
    ]
    for (const [job, args, message] of cases) {
      const res = await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })
      t.equal(res.statusCode, 400, `${job} ${JSON.stringify(args)}`)
      t.match(res.json().message, message)
    }
    const unknownField = await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { arg: {} } })
    t.equal(unknownField.statusCode, 400)
    const malformed = await app.inject({
      method: 'POST',
      url: '/jobs/sleeper/runs',
      headers: { 'content-type': 'application/json' },
      payload: '{"args": ',
    })
    t.equal(malformed.statusCode, 400)
    t.match(malformed.json().message, /JSON/i)
    const unknownJob = await app.inject({ method: 'POST', url: '/jobs/nope/runs', payload: {} })
    t.equal(unknownJob.statusCode, 404)
    const runs = (await app.inject('/runs?job=cache-clear')).json()
    t.equal(runs.items.length, 0, 'no run is recorded for rejected args')
  })

  t.test('a job that throws fails its run and the server stays up', async (t) => {
    const run = (
      await app.inject({
        method: 'POST',
        url: '/jobs/boom/runs',
        payload: { args: { message: 'disk on fire' } },
      })
    ).json()
    const failed = await waitForState(app, run.id, ['failed'])
    t.same(failed.error, { code: 'error', message: 'disk on fire' })
    t.equal(failed.result, null)
    t.equal((await app.inject('/health')).statusCode, 200)
  })

  t.test('a job past its timeout fails with code timeout', async (t) => {
    const run = (await app.inject({ method: 'POST', url: '/jobs/stuck/runs', payload: {} })).json()
    const failed = await waitForState(app, run.id, ['failed'])
    t.equal(failed.error.code, 'timeout')
    t.match(failed.error.message, /300 ms/)
    t.ok(failed.durationMs < 1500, 'ended at the timeout, not when the job gave up')
  })

  t.test('cancel stops a running run; an ended one is a 409; unknown 404', async (t) => {
    const run = (
      await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 10_000 } } })
    ).json()
    await waitForState(app, run.id, ['running'])
    const res = await app.inject({ method: 'POST', url: `/runs/${run.id}/cancel` })
    t.equal(res.statusCode, 202)
    t.equal(res.json().state, 'cancelled')
    t.equal(res.json().error.code, 'cancelled')
    const again = await app.inject({ method: 'POST', url: `/runs/${run.id}/cancel` })
    t.equal(again.statusCode, 409)
    t.match(again.json().message, /already ended \(cancelled\)/)
    t.equal((await app.inject({ method: 'POST', url: '/runs/999999/cancel' })).statusCode, 404)
    t.equal((await app.inject({ method: 'POST', url: '/runs/abc/cancel' })).statusCode, 400)
  })

  t.test('cancel of a queued run is immediate and it never starts', async (t) => {
    const queued = await app.runStore.insertQueued({
      job: 'sleeper',
      trigger: 'manual',
      args: { ms: 0 },
      maxAttempts: 1,
    })
    const res = await app.inject({ method: 'POST', url: `/runs/${queued.id}/cancel` })
    t.equal(res.json().state, 'cancelled')
    await app.runner.pump()
    await new Promise((r) => setTimeout(r, 100))
    const after = (await app.inject(`/runs/${queued.id}`)).json()
    t.equal(after.state, 'cancelled')
    t.equal(after.startedAt, null)
  })
})

t.test('cache-clear deletes expired rows in batches, or everything with all', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', CACHE_CLEAR_BATCH: '100' } })
  await app.sql`
    insert into analysis_cache (key, value, expires_at)
    select 'old-' || i, '{}'::jsonb, now() - interval '1 hour' from generate_series(1, 250) i`
  await app.sql`
    insert into analysis_cache (key, value, expires_at)
    select 'fresh-' || i, '{}'::jsonb, now() + interval '1 hour' from generate_series(1, 20) i`
  await app.sql`insert into analysis_cache (key, value) values ('forever', '{}')`

  const first = (await app.inject({ method: 'POST', url: '/jobs/cache-clear/runs', payload: {} })).json()
  const done = await waitForState(app, first.id, ['succeeded', 'failed'])
  t.same(done.result, { deleted: 250, batches: 3, remaining: 21, mode: 'expired' })
  const [left] = await app.sql`select count(*)::int as n from analysis_cache where key like 'old-%'`
  t.equal(left?.n, 0)

  const all = (
    await app.inject({ method: 'POST', url: '/jobs/cache-clear/runs', payload: { args: { all: true } } })
  ).json()
  const cleared = await waitForState(app, all.id, ['succeeded', 'failed'])
  t.same(cleared.result, { deleted: 21, batches: 1, remaining: 0, mode: 'all' })
})

t.test(
  'a cache-clear blocked on a lock stops at cancel: its statement is cancelled on the server',
  async (t) => {
    const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
    const holder = await app.sql.reserve()
    t.teardown(() => holder.release())
    await holder`begin`
    await holder`lock table analysis_cache in access exclusive mode`
    const run = (await app.inject({ method: 'POST', url: '/jobs/cache-clear/runs', payload: {} })).json()
    await waitForState(app, run.id, ['running'])
    await eventually(async () => {
      const [waiting] = await app.sql`
      select 1 from pg_stat_activity where query like '%delete from analysis_cache%' and wait_event_type = 'Lock'`
      return waiting ? true : undefined
    })
    await app.inject({ method: 'POST', url: `/runs/${run.id}/cancel` })
    const cancelled = await waitForState(app, run.id, ['cancelled'])
    t.equal(cancelled.error.code, 'cancelled')
    const still = await app.sql`
    select 1 from pg_stat_activity where query like '%delete from analysis_cache%' and state = 'active'
      and pid <> pg_backend_pid()`
    t.same(still, [], 'no statement of the job is left waiting on the lock')
    await holder`rollback`
  },
)
