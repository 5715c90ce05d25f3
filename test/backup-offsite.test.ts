// Off-site copies against a real S3-protocol server (s3rver on a loopback port): every file of a set
// uploaded under <prefix>/<kind>/backup_…/<file> and checked; an unreachable or refusing store keeps
// the set local and pending, fails the run with upload_failed, and later runs and start-up upload it,
// oldest first; off-site retention tiers; download, verify and delete of the off-site copy when the
// local file is gone; multipart uploads; size anomalies.
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import t from 'tap'
import { createRemoteStore, type RemoteStore } from '../src/features/backups/offsite/remote-store.js'
import { backUp, backupDir, backupsOf, connect, databaseName, globalsOf } from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'
import { startS3, type TestS3 } from './support/s3.js'

const PREFIX = 'prod/steward'

/** The AWS SDK reads these itself; each app's store is made when it first uploads. */
function useS3(s3: TestS3, accessKeyId = s3.accessKeyId): void {
  process.env.AWS_ACCESS_KEY_ID = accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey
  process.env.AWS_REGION = 'us-east-1'
  process.env.AWS_ENDPOINT_URL_S3 = s3.endpoint
}

function offsiteEnv(dir: string, bucket: string, extra: Record<string, string> = {}) {
  return {
    SCHEDULER_ENABLED: 'false',
    BACKUP_DIR: dir,
    BACKUP_REMOTE_URL: `s3://${bucket}/${PREFIX}`,
    BACKUP_REMOTE_FORCE_PATH_STYLE: 'true',
    RETRY_BASE_MS: '3600000',
    RETRY_MAX_MS: '3600000',
    ...extra,
  }
}

function storeOf(s3: TestS3): RemoteStore {
  return createRemoteStore({
    url: `s3://${s3.bucket}/${PREFIX}`,
    forcePathStyle: true,
    endpoint: s3.endpoint,
  })
}

interface ListedBackup {
  id: number
  file: string
  scope: string
  local: boolean
  remote: { state: string; key: string; uploadedAt: string | null; error: string | null } | null
  anomaly: { reason: string; bytes: number; medianBytes: number } | null
}

const listAll = async (app: Awaited<ReturnType<typeof buildTestApp>>): Promise<ListedBackup[]> =>
  (await app.inject('/backups?limit=500')).json().items

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

t.test('every file is uploaded, checked, and listed with its off-site copy', async (t) => {
  const s3 = await startS3(t)
  useS3(s3)
  const dir = await backupDir(t)
  const app = await buildTestApp(t, { env: offsiteEnv(dir, s3.bucket) })
  const run = await backUp(app, 'hourly')
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  const [dump] = backupsOf(run)
  const globals = globalsOf(run)
  const set = run.result?.set as string
  const store = storeOf(s3)
  t.teardown(() => store.close())
  const objects = (await store.list(PREFIX)).map((o) => o.key).sort()
  t.same(
    objects,
    [`${PREFIX}/${globals?.file}`, `${PREFIX}/${dump?.file}`].sort(),
    'the local layout, under the prefix',
  )
  t.ok(objects.every((key) => key.startsWith(`${PREFIX}/${set}/`)))
  for (const backup of await listAll(app)) {
    t.equal(backup.remote?.state, 'uploaded')
    t.equal(backup.remote?.key, `${PREFIX}/${backup.file}`)
    t.ok(backup.remote?.uploadedAt)
    t.equal(backup.remote?.error, null)
  }
  const head = await store.head(`${PREFIX}/${dump?.file}`)
  t.equal(head?.bytes, dump?.bytes)
  t.equal(head?.sha256, dump?.sha256, 'the sha256 travels with the object')
  t.match(run.result?.offsite, { uploaded: 2, earlier: 0 })
})

t.test(
  'an unreachable store keeps the set local and pending; later runs and start-up upload it',
  async (t) => {
    const port = await freePort()
    const s3Down = {
      endpoint: `http://127.0.0.1:${port}`,
      bucket: 'steward-test',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
    }
    useS3(s3Down as TestS3)
    const dir = await backupDir(t)
    const databaseUrl = await createTestDatabase(t)
    const env = offsiteEnv(dir, 'steward-test', { BACKUP_KEEP_HOURLY: '1' })
    const app = await buildTestApp(t, { databaseUrl, env })
    const first = await backUp(app, 'hourly')
    t.equal(first.state, 'failed')
    t.equal(first.error?.code, 'upload_failed')
    t.match(
      first.error?.message,
      /kept in BACKUP_DIR.*object store at http:\/\/127\.0\.0\.1:\d+ is unreachable/s,
    )
    const second = await backUp(app, 'hourly')
    t.equal(second.error?.code, 'upload_failed')
    const rows = await listAll(app)
    t.equal(rows.length, 4, 'both sets are listed')
    t.ok(
      rows.every((b) => b.local && ['pending', 'failed'].includes(b.remote?.state as string)),
      'waiting',
    )
    const oldest = rows.at(-1)
    t.equal(oldest?.remote?.state, 'failed', 'uploads go oldest first and stop at the first failure')
    t.match(oldest?.remote?.error, /unreachable/)
    t.equal(
      (await fs.readdir(path.join(dir, 'hourly'))).length,
      2,
      'BACKUP_KEEP_HOURLY=1, but nothing is pruned before it is off-site',
    )
    await app.close()

    // The store comes back on the same address: a new instance uploads everything at start-up.
    const s3 = await startS3(t, 'steward-test', port)
    useS3(s3)
    const again = await buildTestApp(t, { databaseUrl, env })
    const uploaded = async () => (await listAll(again)).every((b) => b.remote?.state === 'uploaded')
    const deadline = Date.now() + 15_000
    while (!(await uploaded()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    t.ok(await uploaded(), 'uploaded at start-up')
    const store = storeOf(s3)
    t.teardown(() => store.close())
    t.equal((await store.list(PREFIX)).length, 4)
    // The next run applies local retention: the older sets leave BACKUP_DIR, and stay listed off-site.
    const third = await backUp(again, 'hourly')
    t.equal(third.state, 'succeeded', JSON.stringify(third.error))
    t.equal((await fs.readdir(path.join(dir, 'hourly'))).length, 1)
    const after = await listAll(again)
    t.equal(after.length, 6)
    t.equal(after.filter((b) => !b.local).length, 4, 'off-site only')
  },
)

t.test('wrong credentials and a missing bucket fail the run with a message that says why', async (t) => {
  const s3 = await startS3(t)
  const dir = await backupDir(t)
  useS3(s3, 'NOT-A-KEY')
  const refused = await buildTestApp(t, { env: offsiteEnv(dir, s3.bucket) })
  const run = await backUp(refused, 'manual')
  t.equal(run.error?.code, 'upload_failed')
  t.match(run.error?.message, /refused the credentials/)
  t.notMatch(run.error?.message, /S3RVER/, 'no secret in the message')
  await refused.close()

  useS3(s3)
  const noBucket = await buildTestApp(t, { env: offsiteEnv(dir, 'no-such-bucket') })
  const missing = await backUp(noBucket, 'manual')
  t.equal(missing.error?.code, 'upload_failed')
  t.match(missing.error?.message, /bucket 'no-such-bucket' does not exist/)
  t.ok(
    (await listAll(noBucket)).every((b) => b.local),
    'the set is kept locally',
  )
})

t.test(
  'off-site retention keeps its own tiers; an off-site-only backup is downloaded, verified, deleted',
  async (t) => {
    const s3 = await startS3(t)
    useS3(s3)
    const dir = await backupDir(t)
    const env = offsiteEnv(dir, s3.bucket, { BACKUP_KEEP_HOURLY: '1', BACKUP_REMOTE_KEEP_HOURLY: '2' })
    const app = await buildTestApp(t, { env })
    const runs = []
    for (let i = 0; i < 3; i++) runs.push(await backUp(app, 'hourly'))
    t.ok(runs.every((r) => r.state === 'succeeded'))
    const store = storeOf(s3)
    t.teardown(() => store.close())
    const sets = new Set((await store.list(PREFIX)).map((o) => path.dirname(o.key)))
    t.same(
      [...sets].sort(),
      runs
        .slice(1)
        .map((r) => `${PREFIX}/${r.result?.set}`)
        .sort(),
      'the two newest off-site',
    )
    const rows = await listAll(app)
    t.equal(rows.length, 4, 'the oldest set is gone everywhere; its rows too')
    const [onlyOffsite] = backupsOf(runs[1] as never)
    const row = rows.find((b) => b.id === onlyOffsite?.id)
    t.equal(row?.local, false)
    t.equal(row?.remote?.state, 'uploaded')

    const download = await app.inject(`/backups/${onlyOffsite?.id}/download`)
    t.equal(download.statusCode, 200)
    t.equal(download.headers['x-backup-source'], 'remote')
    t.equal(download.rawPayload.length, onlyOffsite?.bytes)
    t.equal(download.headers.etag, `"${onlyOffsite?.sha256}"`)
    const range = await app.inject({
      url: `/backups/${onlyOffsite?.id}/download`,
      headers: { range: 'bytes=0-9' },
    })
    t.equal(range.statusCode, 206)
    t.equal(range.rawPayload.toString(), download.rawPayload.subarray(0, 10).toString())
    t.equal((await app.inject(`/backups/${onlyOffsite?.id}/download?source=local`)).statusCode, 404)
    const [newest] = backupsOf(runs[2] as never)
    const forced = await app.inject(`/backups/${newest?.id}/download?source=remote`)
    t.equal(forced.headers['x-backup-source'], 'remote')

    const verify = await app.inject({ method: 'POST', url: `/backups/${onlyOffsite?.id}/verify` })
    t.equal(verify.statusCode, 200)
    t.match(verify.json().verifyResult, { ok: true, checksum: 'ok', source: 'remote', restoredWith: 'psql' })

    // An object removed behind Steward's back is a 404 that says so, not a 500.
    await store.delete(`${PREFIX}/${onlyOffsite?.file}`)
    const gone = await app.inject(`/backups/${onlyOffsite?.id}/download`)
    t.equal(gone.statusCode, 404)
    t.match(gone.json().message, /missing from the bucket/)
    const local = await app.inject({ method: 'DELETE', url: `/backups/${newest?.id}?copy=local` })
    t.equal(local.statusCode, 204)
    t.match((await app.inject(`/backups/${newest?.id}`)).json(), {
      local: false,
      remote: { state: 'uploaded' },
    })
    t.equal(
      (await app.inject({ method: 'DELETE', url: `/backups/${newest?.id}?copy=local` })).statusCode,
      404,
    )
    const remote = await app.inject({ method: 'DELETE', url: `/backups/${newest?.id}?copy=remote` })
    t.equal(remote.statusCode, 204)
    t.equal((await app.inject(`/backups/${newest?.id}`)).statusCode, 404, 'the last copy took the row')
    t.equal(await store.head(`${PREFIX}/${newest?.file}`), undefined)
  },
)

t.test('a file over 16 MiB goes up in parts; a set far smaller than usual is flagged', async (t) => {
  const s3 = await startS3(t)
  useS3(s3)
  const dir = await backupDir(t)
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await source`create table big as select i, repeat(md5(i::text), 10) as filler from generate_series(1, 60000) i`
  const app = await buildTestApp(t, {
    env: offsiteEnv(dir, s3.bucket, { BACKUP_DATABASES: databaseName(sourceUrl) }),
  })
  const runs = []
  for (let i = 0; i < 3; i++) runs.push(await backUp(app, 'manual'))
  const [big] = backupsOf(runs[0] as never)
  t.ok((big?.bytes ?? 0) > 16 * 2 ** 20, `a ${big?.bytes}-byte dump`)
  t.ok(runs.every((r) => r.state === 'succeeded' && r.result?.warnings === undefined))
  const store = storeOf(s3)
  t.teardown(() => store.close())
  t.equal((await store.head(`${PREFIX}/${big?.file}`))?.sha256, big?.sha256)

  await source`drop table big`
  const small = await backUp(app, 'manual')
  t.equal(small.state, 'succeeded', 'the dump is real: the run still succeeds')
  const [flagged] = backupsOf(small)
  t.match(small.result?.warnings, [/smaller than the median/])
  const row = (await listAll(app)).find((b) => b.id === flagged?.id)
  t.match(row?.anomaly, { reason: 'smaller', bytes: flagged?.bytes, medianBytes: big?.bytes })
  t.equal(row?.remote?.state, 'uploaded')
})
