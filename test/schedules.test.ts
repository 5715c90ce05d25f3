import { CronExpressionParser } from 'cron-parser'
import t from 'tap'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually, seededScheduleNames } from './helper.js'

const json = (payload: unknown) => ({ payload: payload as Record<string, unknown> })

t.test('schedule CRUD, validation and preview', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })

  t.test('only defaults whose job is registered are seeded', async (t) => {
    const names = (await app.inject('/schedules')).json().items.map((s: { name: string }) => s.name)
    t.same(names.sort(), seededScheduleNames(testJobs))
    t.ok(names.includes('cache-clear') && names.includes('prune-runs'))
  })

  t.test('create, read, edit, disable, delete', async (t) => {
    const created = await app.inject({
      method: 'POST',
      url: '/schedules',
      ...json({
        name: 'nap',
        job: 'sleeper',
        cron: '30 2 * * *',
        timezone: 'Europe/Berlin',
        args: { ms: 5 },
      }),
    })
    t.equal(created.statusCode, 201, created.body)
    const s = created.json()
    t.match(s, {
      name: 'nap',
      job: 'sleeper',
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      enabled: true,
      overlap: 'skip',
      catchUp: 'latest',
      lastRun: null,
    })
    t.same(s.args, { ms: 5 })
    const expected = CronExpressionParser.parse('30 2 * * *', { tz: 'Europe/Berlin' })
      .next()
      .toDate()
      .toISOString()
    t.equal(s.nextRunAt, expected)

    const dup = await app.inject({
      method: 'POST',
      url: '/schedules',
      ...json({ name: 'nap', job: 'sleeper', cron: '* * * * *' }),
    })
    t.equal(dup.statusCode, 409)

    const read = (await app.inject('/schedules/nap?count=3')).json()
    t.equal(read.nextRuns.length, 3)
    t.equal(read.nextRuns[0], expected)

    const edited = await app.inject({
      method: 'PATCH',
      url: '/schedules/nap',
      ...json({ cron: '0 0 1 * 1', timezone: 'UTC', overlap: 'allow' }),
    })
    t.equal(edited.statusCode, 200, edited.body)
    t.match(edited.json(), { cron: '0 0 1 * 1', timezone: 'UTC', overlap: 'allow', args: { ms: 5 } })
    t.ok(Date.parse(edited.json().updatedAt) >= Date.parse(s.updatedAt))

    const disabled = (
      await app.inject({ method: 'PATCH', url: '/schedules/nap', ...json({ enabled: false }) })
    ).json()
    t.equal(disabled.enabled, false)
    t.equal(disabled.nextRunAt, null)
    const list = (await app.inject('/schedules?enabled=false')).json().items
    t.same(
      list.map((s: { name: string }) => s.name),
      ['nap'],
      'listed among the disabled ones',
    )

    t.equal((await app.inject({ method: 'DELETE', url: '/schedules/nap' })).statusCode, 204)
    t.equal((await app.inject('/schedules/nap')).statusCode, 404)
    t.equal((await app.inject({ method: 'DELETE', url: '/schedules/nap' })).statusCode, 404)
    t.equal(
      (await app.inject({ method: 'PATCH', url: '/schedules/nap', ...json({ enabled: true }) })).statusCode,
      404,
    )
  })

  t.test('schedules are listed by name, each with its next fires', async (t) => {
    for (const [name, cron] of [
      ['later', '0 0 1 1 *'],
      ['soon', '* * * * * *'],
      ['middle', '0 * * * *'],
    ]) {
      await app.inject({ method: 'POST', url: '/schedules', ...json({ name, job: 'sleeper', cron }) })
    }
    const items = (await app.inject('/schedules?count=2')).json().items
    const names = items.map((s: { name: string }) => s.name)
    t.same(names, [...names].sort())
    t.ok(items.every((s: { nextRuns: string[] }) => s.nextRuns.length === 2))
    const soon = items.find((s: { name: string }) => s.name === 'soon')
    t.equal(Date.parse(soon.nextRuns[1]) - Date.parse(soon.nextRuns[0]), 1000, 'every second')
    t.equal(soon.nextRunAt, soon.nextRuns[0])
  })

  t.test('bad input is a 400 that says what to fix', async (t) => {
    const cases: Array<[string, string, unknown, RegExp]> = [
      [
        'POST',
        '/schedules',
        { name: 'x1', job: 'sleeper', cron: '61 * * * *' },
        /minute field: 61 is out of range 0-59/,
      ],
      ['POST', '/schedules', { name: 'x2', job: 'sleeper', cron: '* * * *' }, /5 or 6 fields/],
      [
        'POST',
        '/schedules',
        { name: 'x3', job: 'sleeper', cron: '0 0 * * *', timezone: 'Mars/Olympus' },
        /timezone/,
      ],
      [
        'POST',
        '/schedules',
        { name: 'x4', job: 'teleport', cron: '0 0 * * *' },
        /job "teleport" does not exist/,
      ],
      [
        'POST',
        '/schedules',
        { name: 'x5', job: 'sleeper', cron: '0 0 * * *', args: { ms: 'long' } },
        /args\.ms/,
      ],
      ['POST', '/schedules', { name: 'Bad Name', job: 'sleeper', cron: '0 0 * * *' }, /name/],
      [
        'POST',
        '/schedules',
        { name: 'x6', job: 'sleeper', cron: '0 0 * * *', colour: 'red' },
        /body has unknown property 'colour'; allowed: /,
      ],
      ['POST', '/schedules', { job: 'sleeper', cron: '0 0 * * *' }, /name/],
      ['PATCH', '/schedules/cache-clear', { cron: '0 25 * * *' }, /hour field/],
      ['PATCH', '/schedules/cache-clear', { args: { all: 1 } }, /args\.all/],
      ['PATCH', '/schedules/cache-clear', {}, /fewer than 1/],
      ['PATCH', '/schedules/cache-clear', { overlap: 'sometimes' }, /overlap/],
      ['POST', '/schedules/preview', { cron: '0 0 31 2 *' }, /day-of-month|dayOfMonth/],
      ['POST', '/schedules/preview', { cron: '0 0 * * *', count: 101 }, /count/],
      ['POST', '/schedules/preview', { cron: '0 0 * * *', timezone: 'Nowhere/Town' }, /timezone/],
    ]
    for (const [method, url, body, message] of cases) {
      const res = await app.inject({ method: method as 'POST', url, ...json(body) })
      t.equal(res.statusCode, 400, `${method} ${url} ${JSON.stringify(body)}: ${res.body}`)
      t.match(res.json().message, message, JSON.stringify(body))
    }
    const unchanged = (await app.inject('/schedules/cache-clear')).json()
    t.equal(unchanged.cron, '0 3 * * *', 'a rejected edit changes nothing')
  })

  t.test('preview shows fire times without saving', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/schedules/preview',
      ...json({ cron: '0 0 1 * 1', timezone: 'UTC', count: 4 }),
    })
    t.equal(res.statusCode, 200)
    const runs = res.json().nextRuns.map((d: string) => new Date(d))
    t.equal(runs.length, 4)
    for (const d of runs)
      t.ok(d.getUTCDate() === 1 || d.getUTCDay() === 1, `${d.toISOString()} is a 1st or a Monday`)
    t.equal(
      (
        await app.inject({ method: 'POST', url: '/schedules/preview', ...json({ cron: '*/15 * * * *' }) })
      ).json().nextRuns.length,
      5,
    )
    t.equal((await app.inject('/schedules/preview')).statusCode, 404, 'nothing was saved under that name')
  })
})

t.test(
  'the scheduler fires seconds-level schedules at the reported times, and edits apply live',
  async (t) => {
    const app = await buildTestApp(t, { jobs: testJobs })
    const created = await app.inject({
      method: 'POST',
      url: '/schedules',
      ...json({ name: 'tick', job: 'sleeper', cron: '*/1 * * * * *', args: { ms: 0, label: 'tick' } }),
    })
    t.equal(created.statusCode, 201)
    const predicted: string[] = (await app.inject('/schedules/tick?count=3')).json().nextRuns
    const runs = await eventually(
      async () => {
        const items = (await app.inject('/runs?schedule=tick&limit=500')).json().items
        const done = items.filter((r: { state: string; scheduledFor: string }) => r.state === 'succeeded')
        return done.some((r: { scheduledFor: string }) => r.scheduledFor === predicted[2]) ? items : undefined
      },
      8000,
      'the third predicted fire',
    )
    const fired = runs.map((r: { scheduledFor: string }) => r.scheduledFor)
    for (const at of predicted) t.ok(fired.includes(at), `fired at ${at}, as GET /schedules reported`)
    t.equal(new Set(fired).size, fired.length, 'each fire once')
    for (const run of runs.filter((r: { startedAt: string | null }) => r.startedAt)) {
      t.equal(run.trigger, 'schedule')
      t.same(run.result, { slept: 0, label: 'tick' })
      const late = Date.parse(run.startedAt) - Date.parse(run.scheduledFor)
      t.ok(late >= 0 && late < 1000, `started ${late} ms after its fire time`)
    }

    await app.inject({ method: 'PATCH', url: '/schedules/tick', ...json({ enabled: false }) })
    await new Promise((r) => setTimeout(r, 300))
    const countAfterDisable = (await app.inject('/runs?schedule=tick&limit=500')).json().items.length
    await new Promise((r) => setTimeout(r, 2200))
    t.equal(
      (await app.inject('/runs?schedule=tick&limit=500')).json().items.length,
      countAfterDisable,
      'a disabled schedule does not fire',
    )

    await app.inject({
      method: 'PATCH',
      url: '/schedules/tick',
      ...json({ enabled: true, args: { ms: 0, label: 'tock' } }),
    })
    const tock = await eventually(
      async () => {
        const [latest] = (await app.inject('/runs?schedule=tick&limit=1')).json().items
        return latest?.args.label === 'tock' ? latest : undefined
      },
      5000,
      'a fire with the edited args',
    )
    t.equal(tock.job, 'sleeper')
    await app.inject({ method: 'DELETE', url: '/schedules/tick' })
  },
)

t.test('overlap skip records the fire as skipped; allow runs it', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs })
  await app.inject({
    method: 'POST',
    url: '/schedules',
    ...json({ name: 'long', job: 'sleeper', cron: '* * * * * *', args: { ms: 2500 } }),
  })
  const skipped = await eventually(
    async () => {
      const [run] = (await app.inject('/runs?schedule=long&state=skipped&limit=1')).json().items
      return run
    },
    6000,
    'a skipped fire',
  )
  t.equal(skipped.error.code, 'overlap')
  t.equal(skipped.startedAt, null)
  t.ok(skipped.scheduledFor)
  await app.inject({ method: 'PATCH', url: '/schedules/long', ...json({ overlap: 'allow' }) })
  // allow: no fire is skipped; overlapping runs then need the job's concurrency to run side by side.
  await app.inject({ method: 'PATCH', url: '/jobs/sleeper', ...json({ concurrency: 2 }) })
  await eventually(
    async () => {
      const running = (await app.inject('/runs?schedule=long&state=running')).json().items
      return running.length >= 2 ? running : undefined
    },
    6000,
    'two overlapping runs',
  )
  await app.inject({ method: 'DELETE', url: '/schedules/long' })
})

t.test('two instances on one database run each fire exactly once', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const a = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { INSTANCE_ID: 'a' } })
  const b = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { INSTANCE_ID: 'b' } })
  await a.inject({
    method: 'POST',
    url: '/schedules',
    ...json({ name: 'shared', job: 'sleeper', cron: '* * * * * *', overlap: 'allow' }),
  })
  // b learns of the new schedule through LISTEN/NOTIFY.
  // A change made through one instance reaches the others within 2 s.
  await eventually(
    async () => (b.scheduler.upcoming().includes('shared') ? true : undefined),
    2000,
    'b to know the schedule',
  )
  await new Promise((r) => setTimeout(r, 3500))
  await a.inject({ method: 'DELETE', url: '/schedules/shared' })
  const runs = (await a.inject('/runs?schedule=shared&limit=500')).json().items
  const fires = runs.map((r: { scheduledFor: string }) => r.scheduledFor)
  t.ok(fires.length >= 3, `${fires.length} fires`)
  t.equal(new Set(fires).size, fires.length, 'no fire ran twice')
  const gaps = fires.map((f: string, i: number) =>
    i === 0 ? 1000 : Date.parse(fires[i - 1]) - Date.parse(f),
  )
  t.ok(
    gaps.every((g: number) => g === 1000),
    'no second was missed',
  )
})

t.test('a deleted default schedule stays deleted across restarts; edits persist', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const first = await buildTestApp(t, { databaseUrl, env: { SCHEDULER_ENABLED: 'false' } })
  await first.inject({ method: 'PATCH', url: '/schedules/cache-clear', ...json({ cron: '15 4 * * *' }) })
  await first.close()
  const second = await buildTestApp(t, { databaseUrl, env: { SCHEDULER_ENABLED: 'false' } })
  t.equal((await second.inject('/schedules/cache-clear')).json().cron, '15 4 * * *')
  await second.inject({ method: 'DELETE', url: '/schedules/cache-clear' })
  await second.close()
  const third = await buildTestApp(t, { databaseUrl, env: { SCHEDULER_ENABLED: 'false' } })
  const names = (await third.inject('/schedules')).json().items.map((s: { name: string }) => s.name)
  t.same(
    names.sort(),
    seededScheduleNames().filter((n) => n !== 'cache-clear'),
    'cache-clear was not re-created',
  )
})

t.test('fires missed while the event loop was stalled are recorded, and made up for once', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs })
  await app.inject({
    method: 'POST',
    url: '/schedules',
    ...json({ name: 'stall', job: 'sleeper', cron: '* * * * * *' }),
  })
  await eventually(
    async () => {
      const items = (await app.inject('/runs?schedule=stall&state=succeeded')).json().items
      return items.length > 0 ? items : undefined
    },
    5000,
    'a first fire',
  )
  const stalledFrom = Date.now()
  // Long enough for fires to count as missed: claimed more than 3 s after they were due.
  while (Date.now() - stalledFrom < 5500) {
    // Block the event loop, as a long synchronous job or a suspended machine would.
  }
  type Skipped = { trigger: string; error: { code: string } }
  const skipped: Skipped[] = await eventually(
    async () => {
      const items: Skipped[] = (await app.inject('/runs?schedule=stall&state=skipped')).json().items
      return items.filter((r) => r.error.code === 'missed').length >= 2 ? items : undefined
    },
    12_000,
    'missed fires to be recorded',
  )
  for (const run of skipped) {
    // Claimed more than 3 s late: missed. Claimed in time, together: the first runs, and the others
    // (overlap 'skip') find it still queued.
    const why = run.error.code === 'missed' ? 'catch-up' : 'schedule'
    t.equal(run.trigger, why, run.error.code)
    t.ok(['missed', 'overlap'].includes(run.error.code))
  }
  await app.inject({ method: 'PATCH', url: '/schedules/stall', ...json({ enabled: false }) })
  const all = (await app.inject('/runs?schedule=stall&limit=500')).json().items
  const fires = all.map((r: { scheduledFor: string }) => r.scheduledFor)
  t.equal(new Set(fires).size, fires.length, 'every second is recorded once, run or skipped')
  const caughtUp = all.filter(
    (r: { trigger: string; state: string }) => r.trigger === 'catch-up' && r.state !== 'skipped',
  )
  t.same(caughtUp, [], 'the on-time fire right after the stall did the chore: no extra catch-up run')
  const sorted = [...fires].sort()
  for (let i = 1; i < sorted.length; i++) {
    t.equal(Date.parse(sorted[i]) - Date.parse(sorted[i - 1]), 1000, `no gap before ${sorted[i]}`)
  }
})
