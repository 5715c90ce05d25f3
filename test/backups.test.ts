// Backups end to end with the real tools: a database of awkward values backed up through the API in
// each format, downloaded, restored with psql / pg_restore into a fresh database and compared row
// for row; then the restore check, on good and on damaged files.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import {
  backUp,
  backupDir,
  backupsOf,
  connect,
  createEmptyDatabase,
  databaseName,
  dumpsIn,
  fillDatabase,
  fingerprint,
  restoreWithClient,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

t.test('a backup downloaded and restored with the standard client holds every row', async (t) => {
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await fillDatabase(source)
  const expected = await fingerprint(source)
  t.ok(Object.keys(expected).length >= 6, 'several tables')
  t.ok(Object.values(expected).reduce((sum, f) => sum + f.rows, 0) > 3000, 'a few thousand rows')
  const appDatabaseUrl = await createTestDatabase(t)
  const formats: Array<[string, Record<string, string>, RegExp, string]> = [
    ['plain', {}, /\.sql$/, 'application/sql'],
    ['custom', { BACKUP_FORMAT: 'custom' }, /\.dump$/, 'application/octet-stream'],
    ['gzip', { BACKUP_COMPRESS: 'gzip' }, /\.sql\.gz$/, 'application/gzip'],
  ]
  for (const [format, env, extension, contentType] of formats) {
    t.test(format, async (t) => {
      const dir = await backupDir(t)
      const app = await buildTestApp(t, {
        databaseUrl: appDatabaseUrl,
        env: {
          SCHEDULER_ENABLED: 'false',
          BACKUP_DIR: dir,
          BACKUP_DATABASES: databaseName(sourceUrl),
          ...env,
        },
      })
      const run = await backUp(app)
      t.equal(run.state, 'succeeded', run.error?.message ?? 'succeeded')
      const [made] = backupsOf(run)
      const backup = (await app.inject(`/backups/${made?.id}`)).json()
      t.match(backup, {
        kind: 'manual',
        database: databaseName(sourceUrl),
        runId: run.id,
        verifiedAt: null,
        verifyResult: null,
      })
      t.match(
        backup.file,
        new RegExp(`^manual/backup_\\d{8}_\\d{6}/${databaseName(sourceUrl)}${extension.source}`),
      )
      const onDisk = await fs.readFile(path.join(dir, backup.file))
      t.equal(onDisk.length, backup.bytes, 'bytes as recorded')
      t.equal(sha256(onDisk), backup.sha256, 'sha256 as recorded')
      t.equal((await fs.stat(path.join(dir, backup.file))).mode & 0o777, 0o600, 'readable by its owner only')
      t.same(
        (await fs.readdir(path.dirname(path.join(dir, backup.file)))).filter((f) => f.startsWith('.')),
        [],
        'no temporary file left',
      )

      const download = await app.inject(`/backups/${backup.id}/download`)
      t.equal(download.statusCode, 200)
      t.equal(download.headers['content-type'], contentType)
      t.equal(download.headers.etag, `"${backup.sha256}"`)
      t.equal(sha256(download.rawPayload), backup.sha256)
      const file = path.join(dir, `downloaded-${path.basename(backup.file)}`)
      await fs.writeFile(file, download.rawPayload)

      const targetUrl = await createEmptyDatabase(t, source, sourceUrl)
      await restoreWithClient(source, targetUrl, file)
      const target = connect(t, targetUrl)
      t.same(await fingerprint(target), expected, 'every table restores with the same rows')
      const [seq] = await target`select last_value::int as v from shop.orders_id_seq`
      t.equal(seq?.v, 2000, 'sequences restored too')
    })
  }
})

t.test('default: Steward backs up its own database; one set holds every database', async (t) => {
  const dir = await backupDir(t)
  const otherUrl = await createTestDatabase(t)
  const databaseUrl = await createTestDatabase(t)
  const app = await buildTestApp(t, { databaseUrl, env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir } })
  const own = await backUp(app, 'daily')
  t.equal(own.state, 'succeeded', own.error?.message ?? 'succeeded')
  t.same(
    backupsOf(own).map((b) => b.database),
    [databaseName(databaseUrl)],
  )
  await app.close()
  const both = await buildTestApp(t, {
    databaseUrl,
    env: {
      SCHEDULER_ENABLED: 'false',
      BACKUP_DIR: dir,
      BACKUP_DATABASES: `${databaseName(otherUrl)}, ${databaseName(databaseUrl)}`,
    },
  })
  const run = await backUp(both, 'daily')
  const files = backupsOf(run).map((b) => b.file)
  t.equal(files.length, 2)
  t.equal(path.dirname(files[0] as string), path.dirname(files[1] as string), 'one directory per set')
  t.equal(path.dirname(files[0] as string), run.result?.set)
  const listed = dumpsIn((await both.inject('/backups?kind=daily')).json().items)
  t.equal(listed.length, 3)
  t.equal((listed[0]?.id ?? 0) > (listed[2]?.id ?? 0), true, 'newest first')
})

t.test('verify restores into a scratch database, reports, and records the result', async (t) => {
  const dir = await backupDir(t)
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await fillDatabase(source)
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_DATABASES: databaseName(sourceUrl) }
  const totalRows = Object.values(await fingerprint(source)).reduce((sum, f) => sum + f.rows, 0)
  const scratchDatabases = async () =>
    (await source`select datname from pg_database where datname like 'steward_verify_%'`).length

  // One instance at a time: a second one on the same database may pick up the first one's run.
  const variants: Array<[string, Record<string, string>]> = [
    ['custom', { BACKUP_FORMAT: 'custom' }],
    ['gzip', { BACKUP_COMPRESS: 'gzip' }],
    ['plain', {}],
  ]
  for (const [format, extra] of variants) {
    const app = await buildTestApp(t, { databaseUrl, env: { ...env, ...extra } })
    const run = await backUp(app)
    const [made] = backupsOf(run)
    const res = await app.inject({ method: 'POST', url: `/backups/${made?.id}/verify` })
    t.equal(res.statusCode, 200, format)
    const verified = res.json()
    t.ok(verified.verifiedAt, `${format}: verifiedAt recorded`)
    t.match(verified.verifyResult, {
      ok: true,
      checksum: 'ok',
      restoredWith: format === 'custom' ? 'pg_restore' : 'psql',
      missingTables: [],
      extraTables: [],
      countMismatches: [],
    })
    t.equal(verified.verifyResult.rows, totalRows, `${format}: every row counted`)
    t.ok(verified.verifyResult.tables >= 6)
    t.same((await app.inject(`/backups/${made?.id}`)).json(), verified, 'stored on the backup')
    await app.close()
  }
  const app = await buildTestApp(t, { databaseUrl, env })
  t.equal(await scratchDatabases(), 0, 'scratch databases are dropped')

  // A dump that restores with an error: psql's message is the result.
  const broken = 'manual/backup_20200101_000000/broken.sql'
  const text = Buffer.from('create table t (id int);\ninsert into t values (1);\nthis is not sql;\n')
  await fs.mkdir(path.join(dir, path.dirname(broken)), { recursive: true })
  await fs.writeFile(path.join(dir, broken), text)
  const [row] = await app.sql<{ id: string }[]>`
    insert into backups (kind, database, file, set_dir, format, bytes, sha256)
    values ('manual', 'x', ${broken}, ${path.dirname(broken)}, 'plain', ${text.length}, ${sha256(text)})
    returning id`
  const failed = (await app.inject({ method: 'POST', url: `/backups/${row?.id}/verify` })).json()
  t.match(failed.verifyResult, { ok: false, checksum: 'ok', error: { code: 'restore_failed' } })
  t.match(failed.verifyResult.error.message, /syntax error at or near "this"/)
  t.equal(await scratchDatabases(), 0, 'dropped after a failed restore too')

  // A file changed after it was written: caught by its checksum, not restored.
  const [latest] = (await app.inject(`/backups?limit=1&database=${databaseName(sourceUrl)}`)).json().items
  const file = path.join(dir, latest.file)
  const bytes = await fs.readFile(file)
  bytes[100] = bytes[100] === 0x41 ? 0x42 : 0x41
  await fs.writeFile(file, bytes)
  const damaged = (await app.inject({ method: 'POST', url: `/backups/${latest.id}/verify` })).json()
  t.match(damaged.verifyResult, { ok: false, checksum: 'mismatch', error: { code: 'checksum_mismatch' } })
  await fs.rm(file)
  const gone = (await app.inject({ method: 'POST', url: `/backups/${latest.id}/verify` })).json()
  t.match(gone.verifyResult, { ok: false, checksum: 'missing', error: { code: 'file_missing' } })
  t.equal((await app.inject({ method: 'POST', url: '/backups/999999/verify' })).statusCode, 404)
})
