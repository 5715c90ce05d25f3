// Paced and chained runs, in one process: job limits and their API, runs that wait for a slot and
// say why, unique triggers, and chains (success, failure, cancel, bad input).
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Run } from '../src/engine/run-store.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, eventually } from './helper.js'

async function waitForState(app: FastifyInstance, id: number, states: string[], ms = 5000): Promise<Run> {
  return await eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json() as Run
      return states.includes(run.state) ? run : undefined
    },
    ms,
    `run ${id} to reach ${states.join('|')}`,
  )
}

async function trigger(app: FastifyInstance, job: string, body: Record<string, unknown> = {}) {
  return await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: body })
}

const children = async (app: FastifyInstance, id: number): Promise<Run[]> =>
  (await app.inject(`/runs?parentId=${id}`)).json().items

t.test('job limits: shown, changed, validated, restored, audited', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  const backup = (await app.inject('/jobs/database-backup')).json()
  t.equal(backup.concurrency, 1, 'every built-in job runs one at a time by default')
  t.same(backup.defaults, { concurrency: 1, maxAttempts: backup.maxAttempts, timeoutMs: backup.timeoutMs })

  const patch = (body: unknown, name = 'sleeper') =>
    app.inject({ method: 'PATCH', url: `/jobs/${name}`, payload: body as Record<string, unknown> })
  const changed = await patch({ concurrency: 3, timeoutMs: 5000 })
  t.equal(changed.statusCode, 200)
  t.match(changed.json(), { concurrency: 3, timeoutMs: 5000, maxAttempts: 1, defaults: { concurrency: 1 } })
  t.equal((await app.inject('/jobs/sleeper')).json().concurrency, 3, 'kept')
  const [row] = await app.sql`select concurrency, timeout_ms from job_settings where job = 'sleeper'`
  t.same({ ...row }, { concurrency: 3, timeoutMs: 5000 }, 'in the database, for every instance')

  for (const [body, field] of [
    [{ concurrency: 0 }, /concurrency/],
    [{ concurrency: 101 }, /concurrency/],
    [{ maxAttempts: 21 }, /maxAttempts/],
    [{ timeoutMs: 999 }, /timeoutMs/],
    [{ timeoutMs: 86_400_001 }, /timeoutMs/],
    [{ concurrency: 'two' }, /concurrency/],
    [{ concurency: 2 }, /concurency/],
    [{}, /body/],
  ] as const) {
    const res = await patch(body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.json().message, field)
  }
  t.equal((await patch({ concurrency: 2 }, 'nope')).statusCode, 404)

  const restored = (await patch({ concurrency: null })).json()
  t.equal(restored.concurrency, 1, 'null restores the default')
  t.equal(restored.timeoutMs, 5000, 'a field left out keeps its override')
  await patch({ timeoutMs: null })
  t.same(await app.sql`select * from job_settings where job = 'sleeper'`, [], 'no override left')

  const audit = (await app.inject('/audit?action=job.update')).json().items
  t.equal(audit.length, 3)
  t.match(audit.at(-1), { target: 'sleeper', before: { concurrency: 1 }, after: { concurrency: 3 } })

  const { token } = (
    await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'ops', role: 'operator' } })
  ).json()
  const refused = await app.inject({
    method: 'PATCH',
    url: '/jobs/sleeper',
    payload: { concurrency: 5 },
    headers: { authorization: `Bearer ${token}` },
  })
  t.equal(refused.statusCode, 403, 'limits are an admin’s to change')
})

t.test('a job runs at most `concurrency` runs at once; the others wait, oldest first', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  const ids: number[] = []
  for (const label of ['a', 'b', 'c']) {
    ids.push((await trigger(app, 'sleeper', { args: { ms: 60_000, label } })).json().id)
  }
  const [a, b, c] = ids as [number, number, number]
  await waitForState(app, a, ['running'])
  const waiting = await eventually(async () => {
    const run = (await app.inject(`/runs/${b}`)).json() as Run
    return run.waitingFor ? run : undefined
  })
  t.equal(waiting.state, 'queued')
  t.equal(waiting.waitingFor, 'job concurrency')
  t.equal((await app.inject(`/runs/${c}`)).json().state, 'queued')
  const metrics = await eventually(
    async () => {
      const text = (await app.inject('/metrics')).body
      return /steward_runs_waiting\{job="sleeper",reason="job concurrency"\} 2/.test(text) ? text : undefined
    },
    5000,
    'the waiting runs in /metrics',
  )
  t.match(metrics, /steward_runs_queued\{job="sleeper"\} 2/)

  // Another job is not held up by this one.
  const other = (await trigger(app, 'boom')).json()
  t.equal((await waitForState(app, other.id, ['failed'])).error?.message, 'kaboom')

  await app.inject({ method: 'POST', url: `/runs/${a}/cancel` })
  const second = await waitForState(app, b, ['running'])
  t.equal(second.waitingFor, null, 'a running run waits for nothing')
  t.equal((await app.inject(`/runs/${c}`)).json().state, 'queued', 'the oldest waiting run went first')

  // Raising the limit lets the next one start at once.
  await app.inject({ method: 'PATCH', url: '/jobs/sleeper', payload: { concurrency: 2 } })
  await waitForState(app, c, ['running'])
  for (const id of [b, c]) await app.inject({ method: 'POST', url: `/runs/${id}/cancel` })
})

t.test('MAX_CONCURRENT_RUNS caps one instance; the rest wait for instance capacity', async (t) => {
  const app = await buildTestApp(t, {
    jobs: testJobs,
    env: { SCHEDULER_ENABLED: 'false', MAX_CONCURRENT_RUNS: '2' },
  })
  await app.inject({ method: 'PATCH', url: '/jobs/sleeper', payload: { concurrency: 10 } })
  const ids: number[] = []
  for (let i = 0; i < 3; i++) ids.push((await trigger(app, 'sleeper', { args: { ms: 60_000 } })).json().id)
  const [a, b, c] = ids as [number, number, number]
  await waitForState(app, a, ['running'])
  await waitForState(app, b, ['running'])
  const third = await eventually(async () => {
    const run = (await app.inject(`/runs/${c}`)).json() as Run
    return run.waitingFor ? run : undefined
  })
  t.equal(third.waitingFor, 'instance capacity')
  t.equal(app.runner.executingCount(), 2)
  await app.inject({ method: 'POST', url: `/runs/${b}/cancel` })
  await waitForState(app, c, ['running'])
  for (const id of [a, c]) await app.inject({ method: 'POST', url: `/runs/${id}/cancel` })
})

t.test('unique triggers: the queued or running run with the same args, or a new one', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  const body = { args: { ms: 60_000, label: 'once' }, unique: true }
  const [first, ...racing] = await Promise.all(Array.from({ length: 5 }, () => trigger(app, 'sleeper', body)))
  const responses = [first, ...racing].map((r) => r?.statusCode).sort()
  t.same(responses, [200, 200, 200, 200, 202], 'one request created the run')
  const ids = new Set([first, ...racing].map((r) => r?.json().id))
  t.equal(ids.size, 1, 'every request got the same run')
  const [id] = [...ids] as [number]
  const again = await trigger(app, 'sleeper', { args: { label: 'once', ms: 60_000 }, unique: true })
  t.equal(again.statusCode, 200, 'args compare as JSON values, whatever the key order')
  t.equal(again.headers.location, `/runs/${id}`)
  const different = await trigger(app, 'sleeper', { args: { ms: 60_000, label: 'other' }, unique: true })
  t.equal(different.statusCode, 202, 'other args: a new run')
  const notUnique = await trigger(app, 'sleeper', body.args ? { args: body.args } : {})
  t.equal(notUnique.statusCode, 202, 'without unique, always a new run')
  const triggered = (await app.inject('/audit?action=job.trigger')).json().items
  t.equal(triggered.length, 3, 'only created runs are audited as triggers')
  for (const run of [id, different.json().id, notUnique.json().id]) {
    await app.inject({ method: 'POST', url: `/runs/${run}/cancel` })
  }
  const after = await trigger(app, 'sleeper', { args: { ms: 0, label: 'once' }, unique: true })
  t.equal(after.statusCode, 202, 'once the run ended, a unique trigger creates a new one')
})

t.test('chains: each step follows a success; a failure or cancel stops the rest', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })

  t.test('success runs every step in order, each the child of the one before', async (t) => {
    const res = await trigger(app, 'sleeper', {
      args: { label: 'first' },
      then: [
        { job: 'sleeper', args: { label: 'second' } },
        { job: 'cache-clear', args: {} },
      ],
    })
    t.equal(res.statusCode, 202)
    const first = res.json() as Run
    t.same(first.then, [
      { job: 'sleeper', args: { label: 'second', ms: 0 } },
      { job: 'cache-clear', args: {} },
    ])
    await waitForState(app, first.id, ['succeeded'])
    const [second] = await eventually(async () => {
      const list = await children(app, first.id)
      return list.length > 0 ? list : undefined
    })
    t.match(second, { job: 'sleeper', trigger: 'chain', parentId: first.id, args: { label: 'second' } })
    t.same(second?.then, [{ job: 'cache-clear', args: {} }], 'carries the rest of the chain')
    await waitForState(app, (second as Run).id, ['succeeded'])
    const [third] = await eventually(async () => {
      const list = await children(app, (second as Run).id)
      return list.length > 0 ? list : undefined
    })
    t.match(third, { job: 'cache-clear', trigger: 'chain', then: null })
    t.equal((await waitForState(app, (third as Run).id, ['succeeded'])).state, 'succeeded')
    const audit = (await app.inject('/audit?action=job.trigger')).json().items[0]
    t.equal(audit.after.then.length, 2, 'the chain is in the audit log')
  })

  t.test('a failure stops the chain: the steps not run are recorded skipped (chain_stopped)', async (t) => {
    const failed = (
      await trigger(app, 'boom', {
        then: [{ job: 'sleeper' }, { job: 'cache-clear' }],
      })
    ).json() as Run
    await waitForState(app, failed.id, ['failed'])
    const [step] = await eventually(async () => {
      const list = await children(app, failed.id)
      return list.length > 0 ? list : undefined
    })
    t.match(step, { job: 'sleeper', state: 'skipped', trigger: 'chain', error: { code: 'chain_stopped' } })
    t.match(step?.error?.message, new RegExp(`run ${failed.id} \\(boom\\) failed`))
    t.equal(step?.startedAt, null, 'it never ran')
    const [next] = await children(app, (step as Run).id)
    t.match(next, { job: 'cache-clear', state: 'skipped', error: { code: 'chain_stopped' } })
  })

  t.test('cancelling a run cancels its chain', async (t) => {
    const running = (
      await trigger(app, 'sleeper', { args: { ms: 60_000 }, then: [{ job: 'cache-clear' }] })
    ).json()
    await waitForState(app, running.id, ['running'])
    await app.inject({ method: 'POST', url: `/runs/${running.id}/cancel` })
    await waitForState(app, running.id, ['cancelled'])
    const [step] = await eventually(async () => {
      const list = await children(app, running.id)
      return list.length > 0 ? list : undefined
    })
    t.match(step, { job: 'cache-clear', state: 'skipped', error: { code: 'chain_stopped' } })
    t.match(step?.error?.message, /was cancelled/)

    // A queued one too: it waits behind a running sleeper, and is cancelled before it starts.
    const blocker = (await trigger(app, 'sleeper', { args: { ms: 60_000 } })).json()
    await waitForState(app, blocker.id, ['running'])
    const queued = (await trigger(app, 'sleeper', { then: [{ job: 'cache-clear' }] })).json()
    await app.inject({ method: 'POST', url: `/runs/${queued.id}/cancel` })
    const [skipped] = await children(app, queued.id)
    t.match(skipped, { state: 'skipped', error: { code: 'chain_stopped' } })
    await app.inject({ method: 'POST', url: `/runs/${blocker.id}/cancel` })
  })

  t.test('a chain is checked before anything is queued', async (t) => {
    const before = (await app.inject('/runs?limit=1')).json().items[0]?.id
    for (const [then, message] of [
      [[{ job: 'nope' }], /then\[0\]\.job "nope" does not exist; known jobs: .*sleeper/],
      [[{ job: 'sleeper' }, { job: 'sleeper', args: { ms: -1 } }], /then\[1\]\.args\.ms must be >= 0/],
      [[], /then/],
      [Array.from({ length: 11 }, () => ({ job: 'sleeper' })), /then/],
      [[{ job: 'sleeper', arg: {} }], /then/],
    ] as const) {
      const res = await trigger(app, 'sleeper', { then })
      t.equal(res.statusCode, 400, JSON.stringify(then).slice(0, 60))
      t.match(res.json().message, message)
    }
    t.equal((await app.inject('/runs?limit=1')).json().items[0]?.id, before, 'nothing was queued')
  })

  t.test('schedules carry a chain; the default template-sync is followed by template-embed', async (t) => {
    const sync = (await app.inject('/schedules/template-sync')).json()
    t.same(sync.then, [{ job: 'template-embed', args: { missing: true } }])
    const bad = await app.inject({
      method: 'POST',
      url: '/schedules',
      payload: { name: 'chained', job: 'sleeper', cron: '0 3 * * *', then: [{ job: 'nope' }] },
    })
    t.equal(bad.statusCode, 400)
    t.match(bad.json().message, /then\[0\]\.job "nope" does not exist/)
    const made = await app.inject({
      method: 'POST',
      url: '/schedules',
      payload: { name: 'chained', job: 'sleeper', cron: '0 3 * * *', then: [{ job: 'cache-clear' }] },
    })
    t.same(made.json().then, [{ job: 'cache-clear', args: {} }])
    const removed = await app.inject({ method: 'PATCH', url: '/schedules/chained', payload: { then: null } })
    t.equal(removed.json().then, null, 'null removes the chain')
  })
})
