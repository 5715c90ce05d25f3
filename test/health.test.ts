import t from 'tap'
import { buildTestApp, eventually } from './helper.js'

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

t.test('an overloaded process sheds API requests with 503 and Retry-After; probes answer', async (t) => {
  // A heap limit any process is over: the pressure is there from the first sample on.
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', OVERLOAD_HEAP_MB: '1' } })
  const shed = await eventually(async () => {
    const res = await app.inject('/runs')
    return res.statusCode === 200 ? undefined : res
  })
  t.equal(shed.statusCode, 503)
  t.equal(shed.headers['retry-after'], '10')
  t.match(shed.json().message, /overloaded/)
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200, 'the readiness probe still tells the truth')
  t.equal((await app.inject('/health')).statusCode, 200)
})
