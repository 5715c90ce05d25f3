// Scheduling at scale (issue 14): with thousands of schedules the scheduler's periodic work reads
// the ones due soon or overdue, not all of them; GET /schedules pages and filters them.
import postgres from 'postgres'
import t from 'tap'
import { COLUMN_CASE } from '../src/db/embedded.js'
import { ownerOf } from '../src/engine/scheduler.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

const COUNT = 3000

t.test('owners: stable, spread over the live instances, and only a leaver’s share moves', async (t) => {
  const names = Array.from({ length: 3000 }, (_, i) => `schedule-${i}`)
  const three = ['a', 'b', 'c']
  const owners = names.map((n) => ownerOf(n, three))
  for (const id of three) {
    const share = owners.filter((o) => o === id).length
    t.ok(share > 850 && share < 1150, `${id} owns ${share} of 3000`)
  }
  t.same(
    names.map((n) => ownerOf(n, [...three].reverse())),
    owners,
    'the order of the list does not matter',
  )
  const afterLeave = names.map((n) => ownerOf(n, ['a', 'c']))
  const moved = names.filter((_, i) => owners[i] !== afterLeave[i])
  t.ok(
    moved.every((n) => owners[names.indexOf(n)] === 'b'),
    'only the schedules of the instance that left change owner',
  )
  t.equal(ownerOf('x', []), undefined)
})

t.test(`${COUNT} rarely firing schedules: periodic work reads none of them`, async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const app = await buildTestApp(t, {
    jobs: testJobs,
    databaseUrl,
    // The alert loop judges schedule health every second here (every 15 s by default).
    env: { INSTANCE_ID: 'scale', ALERT_CHECK_MS: '1000' },
  })
  // Statistics of another connection: what the app's connections read from schedules.
  const stats = postgres(databaseUrl, { max: 1, onnotice: () => {}, transform: COLUMN_CASE })
  t.teardown(() => stats.end({ timeout: 5 }))
  const rowsRead = async () => {
    await stats`select pg_stat_clear_snapshot()`
    const [row] = await stats<{ seqTupRead: string; idxTupFetch: string }[]>`
      select seq_tup_read, coalesce(idx_tup_fetch, 0) as idx_tup_fetch
      from pg_stat_user_tables where relname = 'schedules'`
    return Number(row?.seqTupRead) + Number(row?.idxTupFetch)
  }
  const beforeSetup = await rowsRead()
  // Inserted in SQL, as a bulk import would: the scheduler computes their next fires itself.
  await app.sql`
    insert into schedules (name, job, cron, timezone, args)
    select 'rare-' || lpad(i::text, 4, '0'), 'sleeper', (i % 60) || ' 3 1 1 *', 'UTC', '{"ms": 0}'
    from generate_series(1, ${COUNT}) i`
  await app.scheduler.reconcile()
  const [unknown] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from schedules where next_fire_at is null or interval_ms is null`
  t.equal(unknown?.n, 0, 'every next fire and interval computed')

  // A backend reports its statistics within a second while busy, but up to 10 s or more after going
  // idle: wait until the set-up's reads (the fill, and the count above: each reads every row) have
  // all arrived before counting.
  let last = await rowsRead()
  let still = 0
  await eventually(
    async () => {
      await new Promise((r) => setTimeout(r, 1500))
      const now = await rowsRead()
      still = now - last < 50 ? still + 1 : 0
      last = now
      return now - beforeSetup >= 2 * COUNT && still >= 3 ? true : undefined
    },
    40_000,
    "the set-up's reads to be reported",
  )
  const before = { rows: await rowsRead(), work: app.scheduler.stats() }
  await new Promise((r) => setTimeout(r, 7000))
  const after = { rows: await rowsRead(), work: app.scheduler.stats() }

  t.ok(after.work.loads - before.work.loads >= 1, 'the lookahead was read')
  t.ok(after.work.overdueScans - before.work.overdueScans >= 5, 'overdue fires were looked for every second')
  t.equal(after.work.rowsLoaded - before.work.rowsLoaded, 0, 'no schedule due soon, none read')
  t.equal(after.work.rowsOverdue - before.work.rowsOverdue, 0, 'none overdue')
  t.same(app.scheduler.armed(), [], 'no timer armed')
  // Walking the table once, as every pass did before, would read 3,000 rows; it ran every 2 s.
  const read = after.rows - before.rows
  t.ok(read < COUNT / 10, `${read} schedule rows read in 7 s (of ${COUNT})`)

  // One of them is due in a few seconds: it is armed and fires, on time, once.
  const soon = new Date(Date.now() + 3000)
  const cron = `${soon.getUTCSeconds()} ${soon.getUTCMinutes()} ${soon.getUTCHours()} * * *`
  const res = await app.inject({ method: 'PATCH', url: '/schedules/rare-0001', payload: { cron } })
  t.equal(res.statusCode, 200)
  const run = await eventually(
    async () => (await app.inject('/runs?schedule=rare-0001')).json().items[0],
    8000,
    'the edited schedule to fire',
  )
  t.equal(run.trigger, 'schedule')
  t.equal(Date.parse(run.scheduledFor), Math.floor(soon.getTime() / 1000) * 1000)
  t.ok(Date.parse(run.queuedAt) - Date.parse(run.scheduledFor) < 1000, 'claimed within a second of its time')
})

t.test('GET /schedules pages by name and filters by job, enabled, health and name', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  await app.sql`
    insert into schedules (name, job, cron, timezone, args, enabled, interval_ms, updated_at)
    select 'bulk-' || lpad(i::text, 4, '0'), case when i % 2 = 0 then 'sleeper' else 'boom' end,
           '0 * * * *', 'UTC', '{}', i % 5 <> 0, 3600000,
           case when i % 10 = 1 then now() - interval '1 day' else now() end
    from generate_series(1, 1500) i`
  const list = async (query: string) => {
    const res = await app.inject(`/schedules?${query}`)
    t.equal(res.statusCode, 200, query)
    return res.json() as {
      items: { name: string; job: string; enabled: boolean; health: string }[]
      nextCursor: string | null
    }
  }

  const first = await list('q=bulk')
  t.equal(first.items.length, 100, 'default page: 100')
  t.equal(first.items[0]?.name, 'bulk-0001')
  let names: string[] = []
  let cursor: string | null = null
  do {
    const page = await list(`q=BULK&limit=1000${cursor ? `&cursor=${cursor}` : ''}`)
    names = names.concat(page.items.map((s) => s.name))
    cursor = page.nextCursor
  } while (cursor)
  t.equal(names.length, 1500, 'pages cover every match once')
  t.equal(new Set(names).size, 1500)
  t.same(names, [...names].sort(), 'ordered by name')

  const sleepers = await list('q=bulk&job=sleeper&limit=1000')
  t.ok(sleepers.items.every((s) => s.job === 'sleeper'))
  t.equal(sleepers.items.length, 750)
  const disabled = await list('q=bulk&enabled=false&limit=1000')
  t.equal(disabled.items.length, 300)
  t.ok(disabled.items.every((s) => !s.enabled))
  // Edited a day ago and never succeeded, with an hourly cron: late (unless disabled).
  const late = await list('health=late&limit=1000')
  t.equal(late.items.length, 150)
  t.ok(late.items.every((s) => s.health === 'late' && s.name.endsWith('1')))
  const one = await list('q=bulk-0042')
  t.same(
    one.items.map((s) => s.name),
    ['bulk-0042'],
  )

  for (const [query, field] of [
    ['limit=1001', 'limit'],
    ['limit=0', 'limit'],
    ['health=sick', 'health'],
    ['cursor=bm90LWEtY3Vyc29y', 'cursor'],
    ['colour=red', 'colour'],
  ]) {
    const res = await app.inject(`/schedules?${query}`)
    t.equal(res.statusCode, 400, `${query}: 400`)
    t.match(res.json().message, field, `${query}: says what to fix`)
  }
})
