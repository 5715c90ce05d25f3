// Retention: newest N sets per kind, files and rows together, manual sets kept, the newest verified
// set protected, nothing pruned after a failed run; and sets made in the same second never collide.
import fs from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { backUp, backupDir, backupsOf, dumpsIn, listFiles } from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'

const setsOnDisk = async (dir: string, kind: string) =>
  (await fs.readdir(path.join(dir, kind)).catch(() => [] as string[])).sort()

t.test('hourly and daily sets are pruned to their limits; manual sets are kept', async (t) => {
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_KEEP_DAILY: '2' }
  const app = await buildTestApp(t, { databaseUrl, env })

  const hourly: string[] = []
  for (let i = 0; i < 8; i++) {
    const run = await backUp(app, 'hourly')
    t.equal(run.state, 'succeeded', run.error?.message ?? `hourly ${i + 1}`)
    hourly.push(run.result?.set as string)
  }
  t.equal(new Set(hourly).size, 8, 'eight distinct sets, even within one second')
  for (const set of hourly) t.match(set, /^hourly\/backup_\d{8}_\d{6}(_\d+)*$/)
  const kept = hourly.slice(2).map((s) => path.basename(s))
  t.same(await setsOnDisk(dir, 'hourly'), kept.sort(), 'the six newest sets stay on disk')
  const listed = dumpsIn((await app.inject('/backups?kind=hourly')).json().items)
  t.equal(listed.length, 6, 'and in the API')
  t.same(
    listed.map((b: { file: string }) => path.dirname(b.file)),
    hourly.slice(2).reverse(),
    'newest first',
  )

  for (let i = 0; i < 3; i++) await backUp(app, 'daily')
  for (let i = 0; i < 3; i++) await backUp(app, 'manual')
  t.equal((await setsOnDisk(dir, 'daily')).length, 2, 'BACKUP_KEEP_DAILY=2')
  t.equal((await setsOnDisk(dir, 'manual')).length, 3, 'manual sets are never pruned')
  t.equal((await setsOnDisk(dir, 'hourly')).length, 6, 'other kinds untouched')
  const rows = (await app.inject('/backups?limit=500')).json().items
  t.equal(dumpsIn(rows).length, 11, 'rows and files agree')
  t.equal(rows.length, 22, 'each set with its globals.sql')
  const files = await listFiles(dir)
  t.equal(files.length, 22)
  t.notOk(
    files.some((f) => path.basename(f).startsWith('.')),
    'no temporary files',
  )
})

t.test('the newest verified set survives newer unverified ones', async (t) => {
  const dir = await backupDir(t)
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_KEEP_HOURLY: '2' },
  })
  const first = await backUp(app, 'hourly')
  await app.sql`update backups set verify_result = '{"ok": true, "checksum": "ok", "durationMs": 1}', verified_at = now()
                where set_dir = ${first.result?.set as string}`
  for (let i = 0; i < 3; i++) await backUp(app, 'hourly')
  const sets = dumpsIn((await app.inject('/backups?kind=hourly')).json().items).map((b: { file: string }) =>
    path.dirname(b.file),
  )
  t.equal(sets.length, 3, 'two newest, plus the newest verified one')
  t.equal(sets[2], first.result?.set)
  t.same(await setsOnDisk(dir, 'hourly'), sets.map((s: string) => path.basename(s)).sort())
})

t.test('a failed run removes what it wrote, keeps every older set, and prunes nothing', async (t) => {
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const app = await buildTestApp(t, { databaseUrl, env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir } })
  for (let i = 0; i < 6; i++) await backUp(app, 'hourly')
  const before = await listFiles(dir)
  t.equal(before.length, 12, 'six dumps, six globals.sql')

  await app.close() // one instance at a time: another may pick up this one's run
  // A smaller limit: were retention to run after the failure, it would prune.
  const own = decodeURIComponent(new URL(databaseUrl).pathname.slice(1))
  const failing = await buildTestApp(t, {
    databaseUrl,
    env: {
      SCHEDULER_ENABLED: 'false',
      BACKUP_DIR: dir,
      BACKUP_KEEP_HOURLY: '2',
      BACKUP_DATABASES: `${own},no_such_database`,
      RETRY_BASE_MS: '3600000',
      RETRY_MAX_MS: '3600000',
    },
  })
  const run = await backUp(failing, 'hourly')
  t.equal(run.state, 'failed')
  t.equal(run.error?.code, 'database_missing')
  t.match(run.error?.message, /^pg_dump exited with code 1: .*database "no_such_database" does not exist$/s)
  const retries = (await failing.inject(`/runs?job=database-backup&trigger=retry`)).json().items
  t.same(retries, [], 'a database that does not exist is not dumped again: no retry is queued')
  t.same(backupsOf(run), [])
  t.same(await listFiles(dir), before, 'the first database of the set is removed too; older sets untouched')
  t.equal((await setsOnDisk(dir, 'hourly')).length, 6, 'no empty set directory left')
  t.equal(
    dumpsIn((await failing.inject('/backups?kind=hourly')).json().items).length,
    6,
    'no row, nothing pruned',
  )
})
