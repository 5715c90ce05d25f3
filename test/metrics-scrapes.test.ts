// Concurrent scrapes of GET /metrics share one computation (single-flight): however many arrive
// while it is in flight, the database sees one set of queries, every scraper the same text, and
// the next scrape after it settled computes afresh.
import type { FastifyInstance } from 'fastify'
import type { Sql } from 'postgres'
import t from 'tap'
import { createMetrics } from '../src/monitoring/metrics.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, eventually } from './helper.js'

const ENV = { SCHEDULER_ENABLED: 'false', RUN_POLL_MS: '100' }
const SUCCEEDED = /^steward_runs_total\{job="sleeper",state="succeeded"\} (\d+)$/m

const succeeded = (app: FastifyInstance) =>
  app.sql`insert into job_runs (job, trigger, state, finished_at) values ('sleeper', 'manual', 'succeeded', now())`

t.test('scrapes that arrive together are answered by one computation', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: ENV })
  await succeeded(app)
  // The metrics' own queries, counted, and answered only once `held` resolves.
  let queries = 0
  let held = Promise.resolve()
  const counted = ((...args: Parameters<Sql>) => {
    queries++
    const query = app.sql(...args)
    return held.then(() => query)
  }) as unknown as Sql
  const metrics = createMetrics({
    sql: counted,
    health: app.scheduleHealth,
    runner: app.runner,
    jobs: app.jobs,
    instanceId: 'test',
    log: app.log,
  })
  t.teardown(() => metrics.close())
  await metrics.render()
  const perComputation = queries
  t.ok(perComputation > 0, `one computation issues ${perComputation} queries`)

  queries = 0
  let answer = () => {}
  held = new Promise<void>((resolve) => {
    answer = resolve
  })
  const scrapes = Array.from({ length: 20 }, () => metrics.render())
  // However long the queries take, scrapes that come meanwhile do not start more.
  await new Promise((resolve) => setTimeout(resolve, 50))
  answer()
  const texts = await Promise.all(scrapes)
  t.equal(queries, perComputation, '20 scrapes, one computation')
  t.equal(new Set(texts).size, 1, 'every scraper gets the same text')
  t.equal(texts[0]?.match(SUCCEEDED)?.[1], '1')
  t.match(texts[0], /^steward_metrics_database_up 1$/m)

  // Settled: the next scrape computes again, and sees what changed since.
  await succeeded(app)
  const next = await metrics.render()
  t.equal(queries, 2 * perComputation, 'a later scrape computes afresh')
  t.equal(next.match(SUCCEEDED)?.[1], '2')
})

t.test('concurrent GET /metrics requests get one body', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: ENV })
  await succeeded(app)
  // Each request is counted as it reaches the metrics, whose first query waits for this lock.
  const render = app.metrics.render
  let arrived = 0
  app.metrics.render = () => {
    arrived++
    return render()
  }
  t.teardown(() => {
    app.metrics.render = render
  })
  let unlock = () => {}
  const unlocked = new Promise<void>((resolve) => {
    unlock = resolve
  })
  let locked = () => {}
  const lockHeld = new Promise<void>((resolve) => {
    locked = resolve
  })
  const holder = app.sql.begin(async (tx) => {
    await tx`lock table job_run_totals in access exclusive mode`
    locked()
    await unlocked
  })
  await lockHeld
  const requests = Array.from({ length: 10 }, () => app.inject('/metrics'))
  await eventually(async () => (arrived === 10 ? true : undefined), 15_000, 'every request to arrive')
  unlock()
  await holder
  const replies = await Promise.all(requests)
  t.same(
    replies.map((r) => r.statusCode),
    Array(10).fill(200),
  )
  t.equal(new Set(replies.map((r) => r.body)).size, 1, 'one body for all')
  t.equal(replies[0]?.body.match(SUCCEEDED)?.[1], '1')
})
