// The /backups endpoints over HTTP: listing and paging, download with ETag / Range / HEAD (through
// inject and through a real socket), files that went missing or changed, paths that try to leave
// BACKUP_DIR, and delete.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import t from 'tap'
import {
  backUp,
  backupDir,
  backupsOf,
  connect,
  databaseName,
  fillDatabase,
  globalsOf,
  type MadeBackup,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase, TEST_ADMIN_TOKEN } from './helper.js'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

interface Fetched {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

function get(
  port: number,
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const withToken = { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...headers }
    const req = http.request({ port, path: url, headers: withToken, method, host: '127.0.0.1' }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('download: whole file, ranges, ETag, HEAD', async (t) => {
  const dir = await backupDir(t)
  const sourceUrl = await createTestDatabase(t)
  await fillDatabase(connect(t, sourceUrl))
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_DATABASES: databaseName(sourceUrl) },
  })
  const [made] = backupsOf(await backUp(app))
  const id = made?.id as number
  const file = await fs.readFile(path.join(dir, made?.file as string))
  const size = file.length
  const etag = `"${made?.sha256}"`
  const url = `/backups/${id}/download`
  t.ok(size > 100_000, `a real dump (${size} bytes)`)

  t.test('GET: the whole file with its headers', async (t) => {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-length'], String(size))
    t.equal(res.headers['content-type'], 'application/sql')
    t.equal(res.headers.etag, etag)
    t.equal(res.headers['accept-ranges'], 'bytes')
    const stamp = /backup_(\d{8}_\d{6})/.exec(made?.file as string)?.[1]
    t.equal(
      res.headers['content-disposition'],
      `attachment; filename="${databaseName(sourceUrl)}-${stamp}.sql"`,
    )
    t.ok(res.rawPayload.equals(file))
    t.equal(sha256(res.rawPayload), made?.sha256)
  })

  t.test('HEAD: the same headers, no body', async (t) => {
    const res = await app.inject({ method: 'HEAD', url })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-length'], String(size))
    t.equal(res.headers.etag, etag)
    t.equal(res.headers['content-type'], 'application/sql')
    t.equal(res.rawPayload.length, 0)
    const ranged = await app.inject({ method: 'HEAD', url, headers: { range: 'bytes=0-9' } })
    t.equal(ranged.statusCode, 206)
    t.equal(ranged.headers['content-length'], '10')
    t.equal(ranged.rawPayload.length, 0)
  })

  t.test('If-None-Match: 304 for the current ETag, weak or in a list; 200 otherwise', async (t) => {
    for (const value of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const res = await app.inject({ url, headers: { 'if-none-match': value } })
      t.equal(res.statusCode, 304, value)
      t.equal(res.rawPayload.length, 0)
      t.equal(res.headers.etag, etag)
    }
    const head = await app.inject({ method: 'HEAD', url, headers: { 'if-none-match': etag } })
    t.equal(head.statusCode, 304)
    const other = await app.inject({ url, headers: { 'if-none-match': '"0000"' } })
    t.equal(other.statusCode, 200)
    t.equal(other.rawPayload.length, size)
  })

  t.test('Range: 206 for one satisfiable range, 416 otherwise; the rest is the whole file', async (t) => {
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=100-', 100, size - 1],
      ['bytes=-50', size - 50, size - 1],
      [`bytes=10-${size * 10}`, 10, size - 1],
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
      [`bytes=-${size * 2}`, 0, size - 1],
    ]
    for (const [range, start, end] of cases) {
      const res = await app.inject({ url, headers: { range } })
      t.equal(res.statusCode, 206, range)
      t.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, range)
      t.equal(res.headers['content-length'], String(end - start + 1), range)
      t.equal(res.headers.etag, etag)
      t.ok(res.rawPayload.equals(file.subarray(start, end + 1)), `${range}: the right bytes`)
    }
    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
      const res = await app.inject({ url, headers: { range } })
      t.equal(res.statusCode, 416, range)
      t.equal(res.headers['content-range'], `bytes */${size}`)
      t.match(res.json(), { statusCode: 416, error: 'Range Not Satisfiable' })
    }
    for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-3', 'bytes=abc']) {
      const res = await app.inject({ url, headers: { range } })
      t.equal(res.statusCode, 200, `${range} is ignored`)
      t.equal(res.rawPayload.length, size)
    }
    const stale = await app.inject({ url, headers: { range: 'bytes=0-9', 'if-range': '"old"' } })
    t.equal(stale.statusCode, 200, 'If-Range with another ETag: the whole (new) file')
    const current = await app.inject({ url, headers: { range: 'bytes=0-9', 'if-range': etag } })
    t.equal(current.statusCode, 206)
  })

  t.test('over a real socket: streamed, resumable, and an aborted download leaks nothing', async (t) => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    const whole = await get(port, url)
    t.equal(whole.status, 200)
    t.equal(whole.headers['transfer-encoding'], undefined, 'Content-Length, not chunked')
    t.ok(whole.body.equals(file))
    const half = Math.floor(size / 2)
    const first = await get(port, url, { range: `bytes=0-${half - 1}` })
    const rest = await get(port, url, { range: `bytes=${half}-`, 'if-range': etag })
    t.equal(first.status, 206)
    t.ok(Buffer.concat([first.body, rest.body]).equals(file), 'two halves make the file')
    const head = await get(port, url, {}, 'HEAD')
    t.equal(head.headers['content-length'], String(size))
    t.equal(head.body.length, 0)

    const fds = async () => (await fs.readdir('/proc/self/fd')).length
    const before = await fds()
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const req = http.get({ port, path: url, host: '127.0.0.1' }, (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        })
        req.on('error', () => resolve())
      })
    }
    await new Promise((r) => setTimeout(r, 200))
    t.ok((await fds()) <= before + 1, 'file handles of aborted downloads are closed')
    t.equal((await get(port, '/health')).status, 200)
  })
})

t.test('files that are gone or changed, ids that are not ids, paths that leave BACKUP_DIR', async (t) => {
  const dir = await backupDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir } })
  const [one] = backupsOf(await backUp(app))
  const [two] = backupsOf(await backUp(app))

  await fs.appendFile(path.join(dir, two?.file as string), 'tampered')
  const changed = await app.inject(`/backups/${two?.id}/download`)
  t.equal(changed.statusCode, 409)
  t.match(changed.json().message, /bytes on disk but .* were recorded/)

  await fs.rm(path.join(dir, one?.file as string))
  const missing = await app.inject(`/backups/${one?.id}/download`)
  t.equal(missing.statusCode, 404)
  t.match(missing.json().message, /missing from BACKUP_DIR/)
  t.equal((await app.inject(`/backups/${one?.id}`)).statusCode, 200, 'the row is still listed')

  for (const bad of ['abc', '0', '-1', '1e400', '..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd']) {
    const res = await app.inject(`/backups/${bad}/download`)
    t.equal(res.statusCode, 400, bad)
  }
  t.equal((await app.inject('/backups/424242/download')).statusCode, 404)
  t.equal((await app.inject('/backups/424242')).statusCode, 404)

  // The table refuses paths outside a set directory, whatever writes to it.
  for (const file of ['../../etc/passwd', '/etc/passwd', 'manual/backup_20200101_000000/../../../x']) {
    await t.rejects(
      app.sql`insert into backups (kind, database, file, set_dir, format, bytes, sha256)
              values ('manual', 'x', ${file}, 'manual/backup_20200101_000000', 'plain', 1, ${'0'.repeat(64)})`,
      { code: '23514' },
      file,
    )
  }
  // A symlink planted in BACKUP_DIR does not lead out of it.
  const set = 'manual/backup_20200101_000000'
  await fs.mkdir(path.join(dir, set), { recursive: true })
  await fs.symlink('/etc/hostname', path.join(dir, set, 'escape.sql'))
  const { size } = await fs.stat('/etc/hostname')
  const [row] = await app.sql<{ id: string }[]>`
    insert into backups (kind, database, file, set_dir, format, bytes, sha256)
    values ('manual', 'x', ${`${set}/escape.sql`}, ${set}, 'plain', ${size}, ${'0'.repeat(64)}) returning id`
  const escaped = await app.inject(`/backups/${row?.id}/download`)
  t.equal(escaped.statusCode, 409)
  t.match(escaped.json().message, /outside BACKUP_DIR/)
})

t.test('list: newest first, filters, keyset pages; delete removes row and file', async (t) => {
  const dir = await backupDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir } })
  const made = []
  const globals: Array<MadeBackup | undefined> = []
  for (const kind of ['hourly', 'daily', 'manual', 'hourly', 'manual']) {
    const run = await backUp(app, kind)
    made.push(...backupsOf(run))
    globals.push(globalsOf(run))
  }
  // Each set: its database dumps, then its globals.sql.
  const all = (await app.inject('/backups')).json()
  const ids = made.flatMap((b, i) => [b.id, globals[i]?.id]).reverse()
  t.same(
    all.items.map((b: { id: number }) => b.id),
    ids,
  )
  t.same(
    all.items.map((b: { scope: string }) => b.scope),
    ids.map((_, i) => (i % 2 === 0 ? 'globals' : 'database')),
  )
  t.equal(all.nextCursor, null)
  t.same(Object.keys(all.items[0]).sort(), [
    'anomaly',
    'bytes',
    'createdAt',
    'database',
    'encrypted',
    'file',
    'host',
    'id',
    'kind',
    'local',
    'remote',
    'runId',
    'scope',
    'sha256',
    'verifiedAt',
    'verifyResult',
  ])
  t.equal((await app.inject('/backups?kind=manual')).json().items.length, 4)
  t.equal((await app.inject('/backups?database=nope')).json().items.length, 0)
  const page1 = (await app.inject('/backups?limit=4')).json()
  const page2 = (await app.inject(`/backups?limit=4&cursor=${page1.nextCursor}`)).json()
  const page3 = (await app.inject(`/backups?limit=4&cursor=${page2.nextCursor}`)).json()
  t.same(
    [...page1.items, ...page2.items, ...page3.items].map((b: { id: number }) => b.id),
    ids,
  )
  t.equal(page3.nextCursor, null)
  for (const bad of [
    '/backups?kind=weekly',
    '/backups?limit=0',
    '/backups?cursor=bm9wZQ',
    '/backups?colour=red',
  ]) {
    t.equal((await app.inject(bad)).statusCode, 400, bad)
  }

  const victim = made[0]
  const file = path.join(dir, victim?.file as string)
  t.ok(await fs.stat(file))
  const del = await app.inject({ method: 'DELETE', url: `/backups/${victim?.id}` })
  t.equal(del.statusCode, 204)
  await t.rejects(fs.stat(file), 'file removed')
  t.ok(await fs.stat(path.dirname(file)), 'its set directory stays while globals.sql is in it')
  t.equal((await app.inject(`/backups/${victim?.id}`)).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/backups/${victim?.id}` })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/backups/${globals[0]?.id}` })).statusCode, 204)
  await t.rejects(fs.stat(path.dirname(file)), 'the set directory goes with its last file')
  t.equal((await app.inject('/backups')).json().items.length, 8)
})

t.test('the endpoints are in the OpenAPI document', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const spec = (await app.inject('/openapi.json')).json()
  for (const p of ['/backups', '/backups/{id}', '/backups/{id}/download', '/backups/{id}/verify']) {
    t.ok(spec.paths[p], p)
  }
  t.ok(spec.paths['/backups/{id}/download'].head, 'HEAD is documented')
  t.ok(spec.components.schemas.Backup)
  t.ok((await app.inject('/jobs/database-backup')).json().schedules.includes('backup-hourly'))
  const bad = await app.inject({
    method: 'POST',
    url: '/jobs/database-backup/runs',
    payload: { args: { type: 'weekly' } },
  })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, 'args.type must be one of: hourly, daily, manual')
})
