import t from 'tap'
import { buildTestApp } from './helper.js'

t.test('liveness and readiness', async (t) => {
  const app = await buildTestApp(t)
  t.same((await app.inject('/health')).json(), { status: 'ok' })
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), {
    status: 'ready',
    database: 'ok',
    scheduler: 'running',
    instance: app.config.instanceId,
  })

  await app.scheduler.stop()
  const stopped = await app.inject('/ready')
  t.equal(stopped.statusCode, 503, 'not ready without a running scheduler')
  t.equal(stopped.json().scheduler, 'stopped')
})

t.test('an instance that fires no schedules is ready without a scheduler', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().scheduler, 'disabled')
})
