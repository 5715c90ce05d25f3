// Restore checks are capped cluster-wide (BACKUP_VERIFY_CONCURRENCY, default 1): each restores a full
// copy on the production server. A second POST /backups/{id}/verify while one runs, on any instance,
// is a 409 that says so; the restore drill (backup-verify) waits for the slot instead; the slot is a
// session advisory lock, so it is free again as soon as its holder is done (or gone).
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { withVerifySlot } from '../src/features/backups/restore/verify-slots.js'
import { backUp, backupDir, type RunView, waitForRun } from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** A plain dump written by hand into BACKUP_DIR and recorded as a backup; returns its id. */
async function crafted(app: FastifyInstance, dir: string, name: string, script: string): Promise<number> {
  const file = `manual/backup_20200101_000000/${name}.sql`
  const text = Buffer.from(script)
  await fs.mkdir(path.join(dir, path.dirname(file)), { recursive: true })
  await fs.writeFile(path.join(dir, file), text)
  const [row] = await app.sql<{ id: string }[]>`
    insert into backups (kind, database, file, set_dir, format, bytes, sha256)
    values ('manual', 'crafted', ${file}, ${path.dirname(file)}, 'plain', ${text.length}, ${sha256(text)})
    returning id`
  return Number(row?.id)
}

/**
 * A dump whose restore waits until the test lets it go (a role of that name exists; roles are seen
 * from inside the restore's transaction), at most 20 s: the first check is slow for certain.
 */
const held = (release: string) =>
  `DO $$ BEGIN FOR i IN 1..400 LOOP
     EXIT WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '${release}');
     PERFORM pg_catalog.pg_sleep(0.05);
   END LOOP; END $$;\n`

const verify = (app: FastifyInstance, id: number) =>
  app.inject({ method: 'POST', url: `/backups/${id}/verify` })

t.test('a second verify while one runs, on any instance, is a 409; then it runs', async (t) => {
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir }
  const first = await buildTestApp(t, { databaseUrl, env })
  const second = await buildTestApp(t, { databaseUrl, env })
  const release = `steward_test_release_${randomBytes(4).toString('hex')}`
  t.teardown(() => first.sql.unsafe(`drop role if exists ${release}`))
  const slow = await crafted(first, dir, 'slow', held(release))
  const quick = await crafted(first, dir, 'quick', 'SELECT 1;\n')

  const running = verify(first, slow)
  // Once it holds the slot (a session advisory lock in this test's own database), the check is under
  // way. Scratch database names cannot tell: other test files make steward_verify_… databases too.
  await eventually(
    async () => {
      const rows = await first.sql`
        select 1 from pg_locks
        where locktype = 'advisory' and granted and objsubid = 2
          and classid = hashtext('steward.backups.verify')::oid
          and database = (select oid from pg_database where datname = current_database())`
      return rows.length > 0 ? true : undefined
    },
    20_000,
    'the first check to take the slot',
  )
  for (const [app, where] of [
    [second, 'another instance'],
    [first, 'the same instance'],
  ] as const) {
    const busy = await verify(app, quick)
    t.equal(busy.statusCode, 409, where)
    t.match(busy.json().message, /a restore check is already running \(BACKUP_VERIFY_CONCURRENCY=1/, where)
  }
  t.equal(
    (await first.inject(`/backups/${quick}`)).json().verifyResult,
    null,
    'the refused one recorded nothing',
  )

  await first.sql.unsafe(`create role ${release}`)
  const done = await running
  t.equal(done.statusCode, 200)
  t.match(done.json().verifyResult, { ok: true, checksum: 'ok' }, 'the first check finished normally')
  const after = await verify(second, quick)
  t.equal(after.statusCode, 200, 'the slot is free again')
  t.match(after.json().verifyResult, { ok: true, tables: 0 })
})

t.test('BACKUP_VERIFY_CONCURRENCY allows that many at once', async (t) => {
  const dir = await backupDir(t)
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_VERIFY_CONCURRENCY: '2' },
  })
  const id = await crafted(app, dir, 'quick', 'SELECT 1;\n')
  await withVerifySlot(app.sql, { limit: 2 }, async () => {
    t.equal((await verify(app, id)).statusCode, 200, 'one slot of two is taken: this one runs')
    await withVerifySlot(app.sql, { limit: 2 }, async () => {
      const busy = await verify(app, id)
      t.equal(busy.statusCode, 409, 'both taken')
      t.match(busy.json().message, /2 restore checks are already running/)
    })
  })
})

t.test('the restore drill waits for the slot, then runs', async (t) => {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    },
  })
  const dir = await backupDir(t)
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, RUN_POLL_MS: '100' },
    logger: { level: 'info', stream },
  })
  const backup = await backUp(app)
  t.equal(backup.state, 'succeeded', JSON.stringify(backup.error))
  let drill: RunView | undefined
  await withVerifySlot(app.sql, { limit: 1 }, async () => {
    const res = await app.inject({ method: 'POST', url: '/jobs/backup-verify/runs', payload: { args: {} } })
    t.equal(res.statusCode, 202)
    const id = res.json().id
    await eventually(
      async () => (lines.some((l) => l.includes('waiting for another restore check')) ? true : undefined),
      20_000,
      'the drill to say it waits',
    )
    const meanwhile = (await app.inject(`/runs/${id}`)).json()
    t.equal(meanwhile.state, 'running', 'still waiting while the slot is held')
    t.same(
      await app.sql`select 1 from backups where verified_at is not null`,
      [],
      'nothing checked meanwhile',
    )
    drill = meanwhile
  })
  const finished = await waitForRun(app, drill?.id as number, 60_000)
  t.equal(finished.state, 'succeeded', JSON.stringify(finished.error))
  t.match(finished.result?.databases, [{ ok: true }], 'then it drilled')
})
