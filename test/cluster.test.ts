import t from 'tap'
import type { Run } from '../src/engine/run-store.js'
import { ownerOf } from '../src/engine/scheduler.js'
import { createTestDatabase, eventually } from './helper.js'
import { FAST, lockCache, runState, stopAll } from './support/cluster.js'
import { type ServerProcess, startServer } from './support/process.js'

t.test('three processes, one per-second schedule for 20 s: every fire runs once, none missing', async (t) => {
  const url = await createTestDatabase(t)
  const servers = await Promise.all(
    ['a', 'b', 'c'].map((id) => startServer({ ...FAST, DATABASE_URL: url, INSTANCE_ID: id })),
  )
  t.teardown(() => stopAll(servers))
  const [a] = servers as [ServerProcess]
  const created = await a.fetch('/schedules', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'tick', job: 'cache-clear', cron: '* * * * * *', overlap: 'allow' }),
  })
  t.equal(created.status, 201, `schedule created: ${await created.text()}`)
  await new Promise((r) => setTimeout(r, 20_000))
  const before = await a.json('/schedules/tick')
  await a.json('/schedules/tick', { method: 'DELETE' })
  await new Promise((r) => setTimeout(r, 1500))
  const runs = (await a.json<{ items: Run[] }>('/runs?schedule=tick&limit=500')).items
  const fires = runs.map((r) => Date.parse(String(r.scheduledFor))).sort((x, y) => x - y)
  t.ok(fires.length >= 18, `${fires.length} fires in 20 s`)
  if (fires.length < 18) {
    t.comment(JSON.stringify(before))
    for (const s of servers) t.comment(s.output().slice(-6000))
  }
  t.equal(new Set(fires).size, fires.length, 'no fire ran twice')
  const gaps = fires.slice(1).filter((f, i) => f - (fires[i] as number) !== 1000)
  t.same(gaps, [], 'no second was missed')
  t.ok(
    runs.every((r) => r.state === 'succeeded'),
    'every fire ran',
  )
  t.ok(runs.every((r) => ['a', 'b', 'c'].includes(String(r.instance))))
  for (const s of servers) t.notMatch(s.output(), /unhandled|uncaught/i)
})

t.test(
  'SIGTERM: a job that ends within the grace period succeeds; one beyond it is interrupted and requeued',
  async (t) => {
    const url = await createTestDatabase(t)
    const env = { ...FAST, DATABASE_URL: url, SCHEDULER_ENABLED: 'false', SHUTDOWN_GRACE_MS: '1500' }

    const patient = await startServer(env)
    t.teardown(() => stopAll([patient]))
    const unlock = await lockCache(url)
    const inside = await patient.json<Run>('/jobs/cache-clear/runs', { method: 'POST', body: {} })
    await runState(patient, inside.id, ['running'])
    patient.child.kill('SIGTERM')
    setTimeout(() => void unlock(), 400)
    t.equal(await patient.exited, 0, 'exit 0')

    const impatient = await startServer(env)
    t.teardown(() => stopAll([impatient]))
    t.equal(
      (await impatient.json<Run>(`/runs/${inside.id}`)).state,
      'succeeded',
      'finished within the grace period',
    )
    const unlockAgain = await lockCache(url)
    const beyond = await impatient.json<Run>('/jobs/cache-clear/runs', { method: 'POST', body: {} })
    await runState(impatient, beyond.id, ['running'])
    const signalled = Date.now()
    impatient.child.kill('SIGTERM')
    const code = await impatient.exited
    t.equal(code, 0, 'exit 0')
    if (code !== 0) t.comment(impatient.output().slice(-4000))
    // The job waits on a lock; at the end of the grace period its statement is cancelled, so
    // shutdown does not wait out the 12 s allowed for cleanup.
    t.ok(Date.now() - signalled < 10_000, `stopped ${Date.now() - signalled} ms after SIGTERM`)
    await unlockAgain()

    const reader = await startServer({ ...env, RUN_POLL_MS: '60000' })
    t.teardown(() => stopAll([reader]))
    const interrupted = await reader.json<Run>(`/runs/${beyond.id}`)
    t.equal(interrupted.state, 'failed')
    t.equal(interrupted.error?.code, 'interrupted')
    const retries = (await reader.json<{ items: Run[] }>('/runs?trigger=retry')).items
    t.equal(retries[0]?.retryOf, beyond.id, 'queued again for whoever runs next')
  },
)

t.test('an owner killed with SIGKILL: the survivor takes its fires over, none lost or doubled', async (t) => {
  const url = await createTestDatabase(t)
  const servers = await Promise.all(
    ['a', 'b'].map((id) => startServer({ ...FAST, DATABASE_URL: url, INSTANCE_ID: id })),
  )
  t.teardown(() => stopAll(servers))
  const [a, b] = servers as [ServerProcess, ServerProcess]
  await eventually(
    async () => (servers.every((s) => s.output().includes('"instances":["a","b"]')) ? true : undefined),
    10_000,
    'both instances to see each other',
  )
  const names = Array.from({ length: 6 }, (_, i) => `tick-${i}`)
  const ownedByA = names.filter((n) => ownerOf(n, ['a', 'b']) === 'a')
  t.ok(ownedByA.length > 0 && ownedByA.length < names.length, `a owns ${ownedByA.join(', ')}`)
  for (const name of names)
    await b.json('/schedules', {
      method: 'POST',
      body: { name, job: 'cache-clear', cron: '* * * * * *', overlap: 'allow' },
    })
  await new Promise((r) => setTimeout(r, 3000))
  a.child.kill('SIGKILL')
  const killedAt = Date.now()
  await a.exited
  await new Promise((r) => setTimeout(r, 12_000))
  for (const name of names) await b.json(`/schedules/${name}`, { method: 'DELETE' })
  await new Promise((r) => setTimeout(r, 1500))

  for (const name of names) {
    const runs = (await b.json<{ items: Run[] }>(`/runs?schedule=${name}&limit=500`)).items
    const fires = runs.map((r) => Date.parse(String(r.scheduledFor))).sort((x, y) => x - y)
    t.equal(new Set(fires).size, fires.length, `${name}: no fire claimed twice`)
    const gaps = fires.slice(1).filter((f, i) => f - (fires[i] as number) !== 1000)
    t.same(gaps, [], `${name}: every second claimed or settled`)
    const later = runs.filter((r) => Date.parse(String(r.scheduledFor)) > killedAt + 4000)
    t.ok(later.length >= 7, `${name}: ${later.length} fires after the takeover`)
    t.ok(
      later.every((r) => r.state !== 'skipped' && r.instance === 'b'),
      `${name}: after the takeover every fire ran, on b`,
    )
    // Once a is no longer counted live (6 s), b owns everything and fires on time.
    const settled = later.filter((r) => Date.parse(String(r.scheduledFor)) > killedAt + 9000)
    t.ok(
      settled.every((r) => Date.parse(r.queuedAt) - Date.parse(String(r.scheduledFor)) < 1000),
      `${name}: on time again once b owns it`,
    )
  }
  t.notMatch(b.output(), /unhandled|uncaught/i)
})
