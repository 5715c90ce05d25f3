// Several hosts, one database, each with its own BACKUP_DIR: a backup records the host that holds
// its local file (BACKUP_HOST), and only that host reads or removes the file. Elsewhere a download
// or a restore check uses the off-site copy, or is a 409 naming the host; a delete is a 409 (the
// off-site copy alone may go); retention removes only its own host's sets, so no row is dropped
// while its file lives on; uploads leave another host's waiting files alone.
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { backUp, backupDir, backupsOf, type RunView } from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'
import { startS3, type TestS3 } from './support/s3.js'

interface Listed {
  id: number
  file: string
  local: boolean
  host: string | null
  remote: { state: string; error: string | null } | null
  verifyResult: unknown
}

/** Two instances on one database, on "host-a" and "host-b", each with its own BACKUP_DIR. */
async function twoHosts(t: Test, extra: (host: string) => Record<string, string> = () => ({})) {
  const databaseUrl = await createTestDatabase(t)
  const dirs = { a: await backupDir(t), b: await backupDir(t) }
  const envOf = (host: 'a' | 'b') => ({
    SCHEDULER_ENABLED: 'false',
    BACKUP_DIR: dirs[host],
    BACKUP_HOST: `host-${host}`,
    // Each instance runs only the runs it starts: no poller takes the other's.
    RUN_POLL_MS: '3600000',
    RETRY_BASE_MS: '3600000',
    RETRY_MAX_MS: '3600000',
    ...extra(host),
  })
  return { databaseUrl, dirs, envOf }
}

const list = async (app: FastifyInstance): Promise<Listed[]> =>
  (await app.inject('/backups?limit=500')).json().items

const exists = (file: string) =>
  fs.stat(file).then(
    () => true,
    () => false,
  )

async function succeeded(app: FastifyInstance, type = 'manual'): Promise<RunView> {
  const run = await backUp(app, type)
  if (run.state !== 'succeeded') throw new Error(`backup failed: ${JSON.stringify(run.error)}`)
  return run
}

t.test('without an off-site copy, another host refuses to touch the file and names its host', async (t) => {
  const { databaseUrl, dirs, envOf } = await twoHosts(t)
  const a = await buildTestApp(t, { databaseUrl, env: envOf('a') })
  const b = await buildTestApp(t, { databaseUrl, env: envOf('b') })
  const [dump] = backupsOf(await succeeded(a))
  const id = dump?.id as number
  const file = path.join(dirs.a, dump?.file as string)
  t.ok(
    (await list(b)).every((row) => row.host === 'host-a' && row.local),
    'recorded with its host',
  )

  for (const url of [`/backups/${id}/download`, `/backups/${id}/download?source=local`]) {
    const res = await b.inject(url)
    t.equal(res.statusCode, 409, url)
    t.match(res.json().message, /on host "host-a"/)
  }
  const verify = await b.inject({ method: 'POST', url: `/backups/${id}/verify` })
  t.equal(verify.statusCode, 409)
  t.match(verify.json().message, /backup \d+ is on host "host-a".*no off-site copy/)
  t.equal((await b.inject(`/backups/${id}`)).json().verifyResult, null, 'no "missing" verdict recorded')
  for (const url of [`/backups/${id}`, `/backups/${id}?copy=local`]) {
    const res = await b.inject({ method: 'DELETE', url })
    t.equal(res.statusCode, 409, `DELETE ${url}`)
    t.match(res.json().message, /on host "host-a".*delete it through an instance there/)
  }
  t.equal((await b.inject(`/backups/${id}`)).statusCode, 200, 'the row stays')
  t.ok(await exists(file), 'and so does its file')

  // On its own host, all as before.
  t.equal((await a.inject(`/backups/${id}/download`)).statusCode, 200)
  t.equal((await a.inject(`/backups/${id}/download?source=remote`)).statusCode, 404, 'no off-site copy')
  t.match((await a.inject({ method: 'POST', url: `/backups/${id}/verify` })).json().verifyResult, {
    ok: true,
    source: 'local',
  })
  t.equal((await a.inject({ method: 'DELETE', url: `/backups/${id}` })).statusCode, 204)
  t.notOk(await exists(file), 'deleted where it was')

  // Rows from before hosts were recorded (null) are taken as local, as they always were.
  const [old] = backupsOf(await succeeded(a))
  await a.sql`update backups set host = null where id = ${old?.id as number}`
  t.equal((await a.inject(`/backups/${old?.id}/download`)).statusCode, 200)
  t.equal(
    (await b.inject(`/backups/${old?.id}/download`)).statusCode,
    404,
    'looked for in its own BACKUP_DIR',
  )
})

t.test('retention on each host removes only its own sets', async (t) => {
  const { databaseUrl, dirs, envOf } = await twoHosts(t, () => ({ BACKUP_KEEP_HOURLY: '1' }))
  const a = await buildTestApp(t, { databaseUrl, env: envOf('a') })
  const b = await buildTestApp(t, { databaseUrl, env: envOf('b') })
  const setOf = (run: RunView) => run.result?.set as string
  const rowsOf = async (set: string) => (await list(a)).filter((row) => row.file.startsWith(`${set}/`))

  const a1 = setOf(await succeeded(a, 'hourly'))
  const b1 = setOf(await succeeded(b, 'hourly'))
  t.not(a1, b1, 'set names are unique across hosts')
  t.equal((await rowsOf(a1)).length, 2, "host-b's retention leaves host-a's older set")
  t.ok(await exists(path.join(dirs.a, a1)), 'with its files')

  const a2 = setOf(await succeeded(a, 'hourly'))
  t.same(await rowsOf(a1), [], "host-a's retention removes its own old set")
  t.notOk(await exists(path.join(dirs.a, a1)), 'rows and files')
  t.equal((await rowsOf(b1)).length, 2, "but not host-b's, though the tiers no longer keep it")
  t.ok(await exists(path.join(dirs.b, b1)))

  await succeeded(b, 'hourly')
  t.same(await rowsOf(b1), [], 'host-b removes it on its next run')
  t.notOk(await exists(path.join(dirs.b, b1)))
  t.equal((await rowsOf(a2)).length, 2, "and keeps host-a's newest")
})

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** The AWS SDK reads these itself, when each app's store is made (its first upload). */
function useS3(s3: Pick<TestS3, 'endpoint' | 'accessKeyId' | 'secretAccessKey'>): void {
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey
  process.env.AWS_REGION = 'us-east-1'
  process.env.AWS_ENDPOINT_URL_S3 = s3.endpoint
}

const remoteEnv = (bucket: string) => () => ({
  BACKUP_REMOTE_URL: `s3://${bucket}/hosts`,
  BACKUP_REMOTE_FORCE_PATH_STYLE: 'true',
})

t.test('with an off-site copy, another host downloads and verifies that copy', async (t) => {
  const s3 = await startS3(t)
  useS3(s3)
  const { databaseUrl, dirs, envOf } = await twoHosts(t, remoteEnv(s3.bucket))
  const a = await buildTestApp(t, { databaseUrl, env: envOf('a') })
  const b = await buildTestApp(t, { databaseUrl, env: envOf('b') })
  const [dump] = backupsOf(await succeeded(a))
  const id = dump?.id as number

  const download = await b.inject(`/backups/${id}/download`)
  t.equal(download.statusCode, 200)
  t.equal(download.headers['x-backup-source'], 'remote')
  t.equal(download.headers.etag, `"${dump?.sha256}"`)
  const verify = await b.inject({ method: 'POST', url: `/backups/${id}/verify` })
  t.equal(verify.statusCode, 200)
  t.match(verify.json().verifyResult, { ok: true, checksum: 'ok', source: 'remote' })

  t.equal((await b.inject({ method: 'DELETE', url: `/backups/${id}` })).statusCode, 409)
  t.equal((await b.inject({ method: 'DELETE', url: `/backups/${id}?copy=remote` })).statusCode, 204)
  t.match((await b.inject(`/backups/${id}`)).json(), { local: true, host: 'host-a', remote: null })
  t.equal((await a.inject({ method: 'DELETE', url: `/backups/${id}` })).statusCode, 204)
  t.notOk(await exists(path.join(dirs.a, dump?.file as string)))
})

t.test("uploads leave another host's waiting files alone", async (t) => {
  // host-a's store is unreachable: its set stays local, waiting.
  useS3({
    endpoint: `http://127.0.0.1:${await freePort()}`,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
  })
  const s3 = await startS3(t)
  const { databaseUrl, envOf } = await twoHosts(t, remoteEnv(s3.bucket))
  const a = await buildTestApp(t, { databaseUrl, env: envOf('a') })
  const first = await backUp(a)
  t.equal(first.error?.code, 'upload_failed')
  const waiting = await list(a)
  t.ok(waiting.every((row) => ['pending', 'failed'].includes(row.remote?.state as string)))

  // host-b's store works: it uploads its own set, and does not look for host-a's files in its BACKUP_DIR.
  useS3(s3)
  const b = await buildTestApp(t, { databaseUrl, env: envOf('b') })
  const second = await backUp(b)
  t.equal(second.state, 'succeeded', JSON.stringify(second.error))
  const after = await list(b)
  const mine = new Set(backupsOf(second).map((d) => d.id))
  t.ok(
    after.filter((row) => mine.has(row.id)).every((row) => row.remote?.state === 'uploaded'),
    "host-b's set is off-site",
  )
  t.same(
    after.filter((row) => row.host === 'host-a').map((row) => row.remote),
    waiting.map((row) => row.remote),
    "host-a's files still wait for host-a, their error untouched",
  )
})
