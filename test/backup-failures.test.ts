// database-backup when things go wrong: no pg_dump, an old one, one that fails, hangs or is
// cancelled, a full disk; the password's route to pg_dump; the start-up sweep of crash leftovers.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { AnyJob } from '../src/engine/job.js'
import { databaseBackup } from '../src/features/backups/database-backup.js'
import { backUp, backupDir, connect, listFiles, waitForRun } from './fixtures/backup-data.js'
import { fakePgDump, isAlive } from './fixtures/backup-fake-pg-dump.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

// Failed runs must not be retried while a test looks at them.
const NO_RETRY = { RETRY_BASE_MS: '3600000', RETRY_MAX_MS: '3600000', SCHEDULER_ENABLED: 'false' }

/** Rows of database dumps (each set also has its globals.sql row). */
const rowCount = async (app: Awaited<ReturnType<typeof buildTestApp>>) =>
  (await app.inject('/backups?limit=500'))
    .json()
    .items.filter((b: { scope: string }) => b.scope === 'database').length

t.test('pg_dump missing, too old, or failing: the run fails with its words, nothing is left', async (t) => {
  const fake = await fakePgDump(t)
  const dir = await backupDir(t)
  const app = await buildTestApp(t, { env: { ...NO_RETRY, BACKUP_DIR: dir, BACKUP_PG_BIN_DIR: fake.dir } })

  await fake.setMode('ok')
  const good = await backUp(app)
  t.equal(good.state, 'succeeded', JSON.stringify(good.error))
  const before = await listFiles(dir)
  t.equal(before.length, 2, 'the dump and globals.sql')

  await fake.setMode('fail')
  const failed = await backUp(app)
  t.equal(failed.state, 'failed')
  t.equal(failed.error?.code, 'exit_code')
  t.equal(
    failed.error?.message,
    'pg_dump exited with code 1: pg_dump: error: query failed: ERROR:  permission denied for table secrets',
    "pg_dump's stderr, trimmed",
  )
  t.same(await listFiles(dir), before, 'no file, no temporary file; the earlier backup untouched')
  t.equal(await rowCount(app), 1, 'no row')

  await fake.setVersion('pg_dump (PostgreSQL) 9.6.24')
  const old = await backUp(app)
  t.equal(old.error?.code, 'version_mismatch')
  t.match(old.error?.message, /pg_dump 9\.6 .* is older than the server \(PostgreSQL 15\.\d+\)/)

  await fs.rm(path.join(fake.dir, 'pg_dump'))
  const missing = await backUp(app)
  t.equal(missing.error?.code, 'pg_dump_missing')
  t.match(missing.error?.message, `pg_dump not found (looked in ${fake.dir})`)
  const retries = (await app.inject('/runs?job=database-backup&trigger=retry')).json().items
  t.same(
    retries.map((r: { retryOf: number }) => r.retryOf),
    [failed.id],
    'a failing pg_dump is retried; a missing or too old one is not (no attempt could do better)',
  )

  t.same(await listFiles(dir), before)
  t.same(await fs.readdir(path.join(dir, 'manual')), [path.dirname(before[0] as string).split('/')[1]])
  t.equal(await rowCount(app), 1)
})

t.test('the password reaches pg_dump through its environment only, and never a log', async (t) => {
  const fake = await fakePgDump(t)
  const dir = await backupDir(t)
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    },
  })
  const databaseUrl = await createTestDatabase(t)
  const password = decodeURIComponent(new URL(databaseUrl).password)
  t.ok(password.length >= 8, 'the test server has a real password')
  const app = await buildTestApp(t, {
    databaseUrl,
    logger: { level: 'trace', stream },
    env: { ...NO_RETRY, BACKUP_DIR: dir, BACKUP_PG_BIN_DIR: fake.dir, BACKUP_DATABASES: 'first,second' },
  })
  await fake.setMode('ok')
  const run = await backUp(app)
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  const argv = await fake.argv()
  t.same(argv, ['--no-password', '--lock-wait-timeout=60s', '--format=plain'], 'argv holds options only')
  t.notOk(argv.join(' ').includes(password))
  const env = await fake.env()
  t.equal(env.PGPASSWORD, password)
  t.equal(env.PGDATABASE, 'second', 'one pg_dump per database, the name through the environment')
  t.equal(env.PGHOST, '127.0.0.1')
  t.equal(env.PGUSER, 'postgres')
  t.ok(lines.length > 5, 'the app logged')
  t.notOk(lines.join('').includes(password), 'no log line holds the password')
  const files = (await listFiles(dir)).filter((f) => !f.endsWith('/globals.sql'))
  t.equal(files.length, 2)
  t.match(files[0], /^manual\/backup_\d{8}_\d{6}\/first\.sql$/)
  t.equal(path.dirname(files[0] as string), path.dirname(files[1] as string), 'one set for one run')
})

t.test('cancel and timeout stop pg_dump, remove the temporary file, write no row', async (t) => {
  const fake = await fakePgDump(t)
  const dir = await backupDir(t)
  const quick = { ...databaseBackup, timeoutMs: 700 } as unknown as AnyJob
  const app = await buildTestApp(t, { env: { ...NO_RETRY, BACKUP_DIR: dir, BACKUP_PG_BIN_DIR: fake.dir } })
  await fake.setMode('hang')

  const started = (
    await app.inject({
      method: 'POST',
      url: '/jobs/database-backup/runs',
      payload: { args: { type: 'daily' } },
    })
  ).json()
  const pid = await eventually(async () => (await fake.pid()) ?? undefined, 5000, 'pg_dump to start')
  t.ok(isAlive(pid), 'pg_dump is running')
  const [tempFile] = await listFiles(dir)
  t.match(
    tempFile,
    new RegExp(`^daily/backup_\\d{8}_\\d{6}/\\.steward_test_\\w+\\.sql\\.${started.id}\\.tmp$`),
  )
  const cancelled = await app.inject({ method: 'POST', url: `/runs/${started.id}/cancel` })
  t.equal(cancelled.json().state, 'cancelled')
  await eventually(async () => (isAlive(pid) ? undefined : true), 5000, 'pg_dump to exit')
  // The temporary file goes first (in the dump), the set directory after it (when the run fails).
  await eventually(
    async () => ((await fs.readdir(path.join(dir, 'daily')).catch(() => [])).length === 0 ? true : undefined),
    5000,
    'the set directory to be removed',
  )
  t.same(await listFiles(dir), [], 'no file is left behind')
  t.equal(await rowCount(app), 0)

  const timed = await buildTestApp(t, {
    jobs: [quick],
    env: { ...NO_RETRY, BACKUP_DIR: dir, BACKUP_PG_BIN_DIR: fake.dir },
  })
  const slow = (
    await timed.inject({
      method: 'POST',
      url: '/jobs/database-backup/runs',
      payload: { args: { type: 'hourly' } },
    })
  ).json()
  const failed = await waitForRun(timed, slow.id, 5000)
  t.equal(failed.error?.code, 'timeout')
  const timedPid = (await fake.pid()) as number
  await eventually(async () => (isAlive(timedPid) ? undefined : true), 5000, 'pg_dump to exit')
  await eventually(async () => ((await listFiles(dir)).length === 0 ? true : undefined), 5000, 'cleanup')
  t.equal(await rowCount(timed), 0)
})

/** A 1 MiB tmpfs: a real full disk. Needs root and mount rights; skipped elsewhere. */
async function tinyDisk(t: Test): Promise<string | null> {
  const dir = await backupDir(t)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir], { stdio: 'ignore' })
  } catch {
    return null
  }
  t.teardown(() => execFileSync('umount', ['-l', dir], { stdio: 'ignore' }))
  return dir
}

t.test('a full disk fails the run as disk_full and keeps earlier backups', async (t) => {
  const dir = await tinyDisk(t)
  if (!dir) {
    t.comment('cannot mount a tmpfs here (needs root); disk-full is not exercised')
    return
  }
  const fake = await fakePgDump(t)
  const app = await buildTestApp(t, { env: { ...NO_RETRY, BACKUP_DIR: dir, BACKUP_PG_BIN_DIR: fake.dir } })
  await fake.setMode('ok')
  t.equal((await backUp(app, 'hourly')).state, 'succeeded')
  const before = await listFiles(dir)
  await fake.setMode('big')
  const full = await backUp(app, 'hourly')
  t.equal(full.state, 'failed')
  t.equal(full.error?.code, 'disk_full')
  t.match(full.error?.message, /no space left/)
  t.same(await listFiles(dir), before, 'the partial file is gone, the earlier backup is intact')
  t.equal(await rowCount(app), 1)
})

t.test('start-up removes temporary files of dead runs and empty set directories', async (t) => {
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const db = connect(t, databaseUrl)
  // A run still in progress on another instance: its temporary file must survive our start-up.
  const [live] = await db<{ id: string }[]>`
    insert into job_runs (job, trigger, state, args, started_at, heartbeat_at)
    values ('database-backup', 'manual', 'running', '{"type":"manual"}', now(), now()) returning id`
  const liveTemp = `manual/backup_20200101_000003/.db.sql.${live?.id}.tmp`
  const put = async (relative: string, content = 'x') => {
    await fs.mkdir(path.join(dir, path.dirname(relative)), { recursive: true })
    await fs.writeFile(path.join(dir, relative), content)
  }
  await put('hourly/backup_20200101_000000/.steward.sql.999999.tmp')
  await fs.mkdir(path.join(dir, 'daily/backup_20200101_000001'), { recursive: true })
  await put('manual/backup_20200101_000002/orphan.sql')
  await put(liveTemp)
  await put('manual/not-a-set/.keep.sql.1.tmp')

  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    },
  })
  const start = async () => {
    const app = await buildTestApp(t, {
      databaseUrl,
      logger: { level: 'info', stream },
      env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir },
    })
    await app.close()
  }
  await start()
  const expected = [liveTemp, 'manual/backup_20200101_000002/orphan.sql', 'manual/not-a-set/.keep.sql.1.tmp']
  t.same(await listFiles(dir), expected.sort(), "the dead run's temporary file is gone, the live one's kept")
  t.ok(
    await fs.stat(path.join(dir, 'daily/backup_20200101_000001')),
    'empty set directories stay while a backup runs',
  )
  t.match(lines.join(''), /orphan\.sql.*without a row/s, 'the unrecorded file is reported, not deleted')

  // That run ended (its instance died): the next start-up cleans up after it as well.
  await db`update job_runs set heartbeat_at = now() - interval '1 hour' where id = ${live?.id as string}`
  await start()
  t.same(await listFiles(dir), [
    'manual/backup_20200101_000002/orphan.sql',
    'manual/not-a-set/.keep.sql.1.tmp',
  ])
  await t.rejects(fs.stat(path.join(dir, 'hourly/backup_20200101_000000')), 'emptied set directory removed')
  await t.rejects(fs.stat(path.join(dir, 'daily/backup_20200101_000001')))
})
