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

t.test('a lagging event loop sheds while it lags, within its limit it never does', async (t) => {
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', OVERLOAD_EVENT_LOOP_DELAY_MS: '400' },
  })
  const block = (ms: number) => {
    const until = Date.now() + ms
    while (Date.now() < until) {}
  }
  // Let the meter take samples of an idle loop first.
  await new Promise((r) => setTimeout(r, 300))
  block(250)
  await new Promise((r) => setTimeout(r, 150))
  t.equal((await app.inject('/runs')).statusCode, 200, 'a 250 ms stall is within a 400 ms limit')
  block(1500)
  await new Promise((r) => setTimeout(r, 150))
  const shed = await app.inject('/runs')
  t.equal(shed.statusCode, 503, 'a 1.5 s stall is over it')
  t.equal(shed.headers['retry-after'], '10')
  t.equal((await app.inject('/ready')).statusCode, 200, 'probes still answer')
  await eventually(async () => ((await app.inject('/runs')).statusCode === 200 ? true : undefined), 3000)
  t.pass('answers again a second later')
})
