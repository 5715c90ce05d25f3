// The restore drill (job backup-verify, schedule backup-drill) with the real tools: the newest backup
// of each database restored and compared, the verdict recorded on the backup and in the metrics;
// encrypted sets with and without the identity; damaged files failing the drill with drill_failed
// and its alert; a set that shrinks flagged and alerted once as backup_anomaly; and a backup whose
// local file is gone drilled from its off-site copy (s3rver).
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { generateIdentity, identityToRecipient } from 'age-encryption'
import type { FastifyInstance } from 'fastify'
import type { Sql } from 'postgres'
import t, { type Test } from 'tap'
import {
  backUp,
  backupDir,
  connect,
  createEmptyDatabase,
  databaseName,
  type RunView,
  waitForRun,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'
import { startS3 } from './support/s3.js'
import { type Received, startReceiver } from './support/webhook-receiver.js'

const ENV = { SCHEDULER_ENABLED: 'false', RUN_POLL_MS: '100' }
const FAST_ALERTS = { ALERT_CHECK_MS: '100', ALERT_RETRY_BASE_MS: '100' }

interface Entry {
  database: string
  scope: string
  backupId: number
  file: string
  ok: boolean
  source?: string
  restoreSeconds?: number
  tables?: number
  rows?: number
  restoreSkipped?: string
  error?: { code: string; message: string }
}

interface Made {
  id: number
  scope: string
  database: string
  file: string
}

/** A database of its own (from template0, so it holds only what the test puts in it), and its name. */
async function sourceDatabase(t: Test): Promise<{ sql: Sql; name: string }> {
  const adminUrl = await createTestDatabase(t)
  const url = await createEmptyDatabase(t, connect(t, adminUrl), adminUrl)
  const sql = connect(t, url)
  await sql.unsafe(`
    create table items (id integer primary key, label text);
    create table notes (id integer primary key, body text);
    insert into items select i, 'item ' || i from generate_series(1, 100) i;
    insert into notes select i, repeat('n', i) from generate_series(1, 50) i;`)
  return { sql, name: databaseName(url) }
}

async function drill(app: FastifyInstance, args: Record<string, unknown> = {}): Promise<RunView> {
  const res = await app.inject({ method: 'POST', url: '/jobs/backup-verify/runs', payload: { args } })
  if (res.statusCode !== 202) throw new Error(`trigger failed: ${res.statusCode} ${res.body}`)
  return await waitForRun(app, res.json().id, 60_000)
}

const made = (run: RunView) => (run.result?.backups ?? []) as Made[]
const dumpOf = (run: RunView) => made(run).find((b) => b.scope === 'database') as Made
const entries = (run: RunView) => (run.result?.databases ?? []) as Entry[]

async function backedUp(app: FastifyInstance): Promise<RunView> {
  const run = await backUp(app)
  if (run.state !== 'succeeded') throw new Error(`backup failed: ${JSON.stringify(run.error)}`)
  return run
}

async function scrape(app: FastifyInstance): Promise<string> {
  return (await app.inject('/metrics')).body
}

const ofType = (list: Received[], type: string) => list.filter((r) => r.body.type === type)

t.test('the drill restores the newest backup of each database and records the verdict', async (t) => {
  const source = await sourceDatabase(t)
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const env = { ...ENV, BACKUP_DIR: dir, BACKUP_DATABASES: source.name }
  const app = await buildTestApp(t, { databaseUrl, env })
  const schedule = (await app.inject('/schedules/backup-drill')).json()
  t.match(schedule, {
    name: 'backup-drill',
    job: 'backup-verify',
    cron: '0 6 * * 0',
    args: {},
    enabled: true,
  })

  const empty = await drill(app)
  t.equal(empty.state, 'succeeded', 'nothing to drill yet is no failure')
  t.same(empty.result?.databases, [])
  t.match(empty.result?.note, /no backups/)
  t.same(empty.result?.notBackedUp, [source.name], 'says which database has no backup')

  await backedUp(app)
  const newest = await backedUp(app)
  const dump = dumpOf(newest)
  const run = await drill(app)
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  const [entry, ...others] = entries(run)
  t.same(others, [], 'one database')
  t.match(entry, {
    database: source.name,
    scope: 'database',
    backupId: dump.id,
    file: dump.file,
    ok: true,
    source: 'local',
    tables: 2,
    rows: 150,
  })
  t.ok((entry?.restoreSeconds ?? -1) >= 0, 'restore seconds reported')
  t.notOk(entry?.restoreSkipped)
  t.match(run.result?.globals, { scope: 'globals', ok: true, restoreSkipped: /roles/ }, 'roles file checked')
  t.notOk(run.result?.notBackedUp)

  const backup = (await app.inject(`/backups/${dump.id}`)).json()
  t.ok(backup.verifiedAt, 'verifiedAt recorded')
  t.match(backup.verifyResult, { ok: true, checksum: 'ok', tables: 2, rows: 150, restoredWith: 'psql' })
  const globals = made(newest).find((b) => b.scope === 'globals') as Made
  t.ok((await app.inject(`/backups/${globals.id}`)).json().verifiedAt, 'the set is verified as a whole')

  const metrics = await scrape(app)
  const verifiedAt = Date.parse(backup.verifiedAt) / 1000
  t.match(
    metrics,
    `steward_backup_last_verified_timestamp_seconds{database="${source.name}"} ${verifiedAt}`,
    'last verified metric',
  )

  const one = await drill(app, { database: source.name })
  t.equal(one.state, 'succeeded')
  t.equal(entries(one).length, 1)
  t.equal(one.result?.globals, null, 'one database: no roles file')
  const none = await drill(app, { database: 'nope' })
  t.equal(none.state, 'failed')
  t.match(none.error, { code: 'no_backup', message: /"nope"/ })
  const bad = await app.inject({
    method: 'POST',
    url: '/jobs/backup-verify/runs',
    payload: { args: { database: '' } },
  })
  t.equal(bad.statusCode, 400, 'args are validated')

  // Where the client tools are missing, no check can be made: the drill fails, nothing is recorded.
  const noTools = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-no-tools-'))
  t.teardown(() => fs.rm(noTools, { recursive: true, force: true }))
  const lastVerdict = (await app.inject(`/backups/${dump.id}`)).json().verifiedAt
  const blind = await buildTestApp(t, { databaseUrl, env: { ...env, BACKUP_PG_BIN_DIR: noTools } })
  const unable = await drill(blind)
  t.equal(unable.state, 'failed')
  t.match(unable.error, { code: 'drill_failed', message: /^cannot restore-check backups here: .*psql/ })
  t.equal((await app.inject(`/backups/${dump.id}`)).json().verifiedAt, lastVerdict, 'no verdict recorded')
})

t.test('encrypted backups: size and sha256 only without the identity, the full check with it', async (t) => {
  const source = await sourceDatabase(t)
  const dir = await backupDir(t)
  const identity = await generateIdentity()
  const recipient = await identityToRecipient(identity)
  const databaseUrl = await createTestDatabase(t)
  const env = { ...ENV, BACKUP_DIR: dir, BACKUP_DATABASES: source.name, BACKUP_AGE_RECIPIENTS: recipient }
  const app = await buildTestApp(t, { databaseUrl, env })
  const dump = dumpOf(await backedUp(app))
  t.match(dump.file, /\.sql\.age$/)

  const blind = await drill(app)
  t.equal(blind.state, 'succeeded', JSON.stringify(blind.error))
  const [entry] = entries(blind)
  t.match(entry, { backupId: dump.id, ok: true, restoreSkipped: /BACKUP_AGE_IDENTITY_FILE/ })
  t.equal(entry?.tables, undefined, 'nothing restored')
  t.match((await app.inject(`/backups/${dump.id}`)).json().verifyResult, {
    ok: true,
    checksum: 'ok',
    restoreSkipped: /BACKUP_AGE_IDENTITY_FILE/,
  })
  await app.close()

  const keyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-drill-key-'))
  t.teardown(() => fs.rm(keyDir, { recursive: true, force: true }))
  const keyFile = path.join(keyDir, 'key.txt')
  await fs.writeFile(keyFile, `# public key: ${recipient}\n${identity}\n`, { mode: 0o600 })
  const keyed = await buildTestApp(t, { databaseUrl, env: { ...env, BACKUP_AGE_IDENTITY_FILE: keyFile } })
  const full = await drill(keyed)
  t.equal(full.state, 'succeeded', JSON.stringify(full.error))
  const [checked] = entries(full)
  t.match(checked, { backupId: dump.id, ok: true, tables: 2, rows: 150 })
  t.notOk(checked?.restoreSkipped, 'restored')
  t.match(
    full.result?.globals,
    { ok: true, restoreSkipped: /roles are server-wide/ },
    'decrypted, not applied',
  )
  const after = (await keyed.inject(`/backups/${dump.id}`)).json().verifyResult
  t.match(after, { ok: true, tables: 2, rows: 150 })
  t.notOk(after.restoreSkipped)
})

t.test('a damaged backup fails the drill with drill_failed, alerted as such', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const source = await sourceDatabase(t)
  const dir = await backupDir(t)
  const app = await buildTestApp(t, {
    env: {
      ...ENV,
      ...FAST_ALERTS,
      BACKUP_DIR: dir,
      BACKUP_DATABASES: source.name,
      ALERT_WEBHOOK_URL: receiver.url,
    },
  })
  const dump = dumpOf(await backedUp(app))
  const file = path.join(dir, dump.file)
  const handle = await fs.open(file, 'r+')
  await handle.write('-- damaged --', 40)
  await handle.close()

  const run = await drill(app)
  t.equal(run.state, 'failed')
  t.equal(run.error?.code, 'drill_failed')
  t.match(
    run.error?.message,
    `1 of 2 file(s) did not pass the restore check: ${source.name} (backup ${dump.id}`,
  )
  t.match(run.error?.message, /checksum_mismatch/)
  t.match((await app.inject(`/backups/${dump.id}`)).json().verifyResult, {
    ok: false,
    checksum: 'mismatch',
    error: { code: 'checksum_mismatch' },
  })
  t.equal((await app.inject(`/runs/${run.id}`)).json().attempt, 1, 'not retried')

  const alert = await eventually(
    async () => ofType(receiver.delivered(), 'drill_failed')[0],
    15_000,
    'the drill_failed alert',
  )
  t.match(alert.body, {
    type: 'drill_failed',
    incident: `run-failed:${run.id}`,
    text: /^Steward: restore drill \(run \d+ of backup-verify\) failed: 1 of 2 file\(s\)/,
    run: { id: run.id, job: 'backup-verify', error: { code: 'drill_failed' } },
  })

  // A file whose bytes match the record but that does not restore: the restore itself fails.
  const broken = 'create table items (id integer primary key);\ninsert into nowhere values (1);\n'
  await fs.writeFile(file, broken)
  await app.sql`
    update backups set bytes = ${Buffer.byteLength(broken)},
      sha256 = encode(sha256(convert_to(${broken}, 'UTF8')), 'hex') where id = ${dump.id}`
  const second = await drill(app)
  t.equal(second.error?.code, 'drill_failed')
  t.match(second.error?.message, /restore_failed/)
  await eventually(async () => (ofType(receiver.delivered(), 'drill_failed').length === 2 ? true : undefined))

  await new Promise((r) => setTimeout(r, 400))
  const kinds = await app.sql<{ kind: string; n: number }[]>`
    select kind, count(*)::int as n from alerts group by kind order by kind`
  t.same(kinds, [{ kind: 'drill_failed', n: 2 }], 'drill failures only, no run_failed, once each')
})

t.test('a set far smaller than the previous ones is flagged and alerted once', async (t) => {
  const receiver = await startReceiver()
  t.teardown(() => receiver.close())
  const source = await sourceDatabase(t)
  await source.sql`create table big (id integer primary key, payload text)`
  await source.sql`insert into big select i, repeat(md5(i::text), 8) from generate_series(1, 5000) i`
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const env = {
    ...ENV,
    ...FAST_ALERTS,
    BACKUP_DIR: dir,
    BACKUP_DATABASES: source.name,
    ALERT_WEBHOOK_URL: receiver.url,
  }
  const app = await buildTestApp(t, { databaseUrl, env })
  for (let i = 0; i < 3; i++) await backedUp(app)
  await source.sql`drop table big`
  const shrunk = await backedUp(app)
  const dump = dumpOf(shrunk)
  t.match(shrunk.result?.anomalies, [{ id: dump.id, reason: 'smaller' }], 'the run says so')

  const alert = await eventually(
    async () => ofType(receiver.delivered(), 'backup_anomaly')[0],
    15_000,
    'the anomaly alert',
  )
  t.match(alert.body, {
    type: 'backup_anomaly',
    incident: `backup-anomaly:${dump.id}`,
    text: new RegExp(
      `^Steward: backup ${dump.id} \\(${source.name}, ${dump.file}\\) is \\d+ % of the median`,
    ),
    backup: { id: dump.id, database: source.name, file: dump.file, kind: 'manual', scope: 'database' },
    anomaly: { reason: 'smaller', bytes: Number, medianBytes: Number },
  })
  t.equal(alert.headers['idempotency-key'], `backup-anomaly:${dump.id}`)

  // Another instance sharing the database, and more ticks: still one alert.
  const other = await buildTestApp(t, { databaseUrl, env })
  await other.alerts.tick()
  await new Promise((r) => setTimeout(r, 500))
  t.equal(ofType(receiver.requests, 'backup_anomaly').length, 1, 'one POST')
  const rows = await app.sql`select incident, run_id::int from alerts where kind = 'backup_anomaly'`
  t.same(rows, [{ incident: `backup-anomaly:${dump.id}`, runId: shrunk.id }], 'recorded once, with its run')
  t.match(await scrape(app), `steward_backup_anomalies{database="${source.name}"} 1`)
})

t.test('a backup whose local file is gone is drilled from its off-site copy', async (t) => {
  const s3 = await startS3(t)
  // The AWS SDK reads these itself (this file's process only).
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
  })
  const source = await sourceDatabase(t)
  const dir = await backupDir(t)
  const app = await buildTestApp(t, {
    env: {
      ...ENV,
      BACKUP_DIR: dir,
      BACKUP_DATABASES: source.name,
      BACKUP_REMOTE_URL: `s3://${s3.bucket}/drills`,
      BACKUP_REMOTE_FORCE_PATH_STYLE: 'true',
    },
  })
  const dump = dumpOf(await backedUp(app))
  const removed = await app.inject({ method: 'DELETE', url: `/backups/${dump.id}?copy=local` })
  t.equal(removed.statusCode, 204, removed.body)
  t.match((await app.inject(`/backups/${dump.id}`)).json(), { local: false, remote: { state: 'uploaded' } })
  await t.rejects(fs.access(path.join(dir, dump.file)), 'the local file is gone')

  const run = await drill(app)
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  t.match(entries(run), [{ backupId: dump.id, ok: true, source: 'remote', tables: 2, rows: 150 }])
  t.match((await app.inject(`/backups/${dump.id}`)).json().verifyResult, { ok: true, source: 'remote' })
  t.match(await scrape(app), `steward_backup_upload_pending{database="${source.name}"} 0`)

  // The object store gone: no copy can be read, the drill fails, and the backup's verdict stands.
  const before = (await app.inject(`/backups/${dump.id}`)).json()
  await s3.close()
  const unreachable = await drill(app)
  t.equal(unreachable.state, 'failed')
  t.equal(unreachable.error?.code, 'drill_failed')
  t.match(unreachable.error?.message, `${source.name} (backup ${dump.id}, ${dump.file})`)
  t.same((await app.inject(`/backups/${dump.id}`)).json().verifyResult, before.verifyResult, 'no verdict')
})
