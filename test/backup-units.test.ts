// The backup building blocks on their own: connection URLs to libpq environments, finding and
// version-checking the client tools, reading a dump's contents, names and paths, ranges, and a
// pg_dump that ignores SIGTERM.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { anomalyOf, median } from '../src/features/backups/anomalies.js'
import { contentDisposition, noneMatch, parseRange } from '../src/features/backups/download.js'
import { dumpToFile, pgDumpArgs } from '../src/features/backups/dump.js'
import { fileNameFor, resolveInside, stamp } from '../src/features/backups/files.js'
import { sweepRestoreTemp } from '../src/features/backups/housekeeping.js'
import { compareContents, readDumpContents } from '../src/features/backups/restore/contents.js'
import type { StoredBackup } from '../src/features/backups/schemas.js'
import {
  BackupError,
  connectionEnv,
  locateTool,
  parseDatabaseUrl,
  parseToolVersion,
  type Tool,
} from '../src/features/backups/tools.js'
import { fakePgDump, isAlive } from './fixtures/backup-fake-pg-dump.js'
import { eventually } from './helper.js'

async function tempDir(t: Test) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-unit-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('database URLs become libpq environment variables; the password only there', async (t) => {
  const conn = parseDatabaseUrl(
    'postgres://us%40er:p%40ss%2Fw%3Ard@db1:5433,db2/my%20db?sslmode=verify-full&x=y',
  )
  t.same(conn, {
    hosts: ['db1', 'db2'],
    ports: ['5433', ''],
    user: 'us@er',
    password: 'p@ss/w:rd',
    database: 'my db',
    extra: { PGSSLMODE: 'verify-full' },
  })
  const env = connectionEnv(conn, 'other')
  t.match(env, {
    PGHOST: 'db1,db2',
    PGPORT: '5433,5432',
    PGUSER: 'us@er',
    PGPASSWORD: 'p@ss/w:rd',
    PGDATABASE: 'other',
    PGSSLMODE: 'verify-full',
  })
  t.same(parseDatabaseUrl('postgresql://[::1]:6543/x').hosts, ['::1'])
  t.same(parseDatabaseUrl('postgres:///x?host=/var/run/postgresql').hosts, ['/var/run/postgresql'])
  t.equal(connectionEnv(parseDatabaseUrl('postgres://h/x'), 'x').PGPORT, process.env.PGPORT)
  t.throws(() => parseDatabaseUrl('mysql://x'), BackupError)
})

t.test('tool versions and where the tools are found', async (t) => {
  t.same(parseToolVersion('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'), {
    version: '15.18',
    major: 15,
  })
  t.same(parseToolVersion('pg_dump (PostgreSQL) 17devel'), { version: '17', major: 17 })
  t.equal(parseToolVersion('something else'), null)

  const server = { major: 15, text: '15.18' }
  const old = await tempDir(t)
  const current = await tempDir(t)
  const tool = (dir: string, version: string) =>
    fs.writeFile(path.join(dir, 'pg_dump'), `#!/bin/sh\necho "pg_dump (PostgreSQL) ${version}"\n`, {
      mode: 0o755,
    })
  await tool(old, '14.9')
  await tool(current, '16.2')
  const found = await locateTool('pg_dump', server, { pathEnv: old, versionDirs: [current] })
  t.match(
    found,
    { path: path.join(current, 'pg_dump'), version: '16.2', major: 16 },
    'a newer one wins over PATH',
  )
  await t.rejects(locateTool('pg_dump', server, { pathEnv: old, versionDirs: [] }), {
    code: 'version_mismatch',
    message: /pg_dump 14\.9 \(.*\) is older than the server \(PostgreSQL 15\.18\)/,
  })
  await t.rejects(locateTool('pg_dump', server, { pathEnv: '', versionDirs: ['/nonexistent/{major}/bin'] }), {
    code: 'pg_dump_missing',
    message: /looked in \/nonexistent\/15\/bin/,
  })
  const pinned = await locateTool('pg_dump', server, { binDir: current, pathEnv: old })
  t.equal(pinned.path, path.join(current, 'pg_dump'), 'BACKUP_PG_BIN_DIR is the only place looked in')
})

const script = (text: string) => {
  // Fed a few bytes at a time, so lines and the \. terminator straddle chunks.
  const buf = Buffer.from(text)
  const chunks: Buffer[] = []
  for (let i = 0; i < buf.length; i += 7) chunks.push(buf.subarray(i, i + 7))
  return Readable.from(chunks)
}

t.test("a dump's tables and rows are read from its script", async (t) => {
  const text = [
    '--',
    '-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres',
    '--',
    'CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$',
    'begin',
    'COPY x FROM stdin;',
    'end $$;',
    '-- Name: items; Type: TABLE; Schema: shop; Owner: postgres',
    '-- Name: Tab le; Type: TABLE; Schema: we;ird; Owner: -',
    '-- Name: empty; Type: TABLE; Schema: public; Owner: postgres; Tablespace: fast',
    '-- Data for Name: items; Type: TABLE DATA; Schema: shop; Owner: postgres',
    '--',
    '',
    'COPY shop.items (id, note) FROM stdin;',
    '1\ta\\nb',
    '2\t\\\\.',
    '3\t\\N',
    '\\.',
    '-- Data for Name: Tab le; Type: TABLE DATA; Schema: we;ird; Owner: -',
    'COPY "we;ird"."Tab le" (id) FROM stdin;\r',
    '1\r',
    '\\.\r',
    '-- Data for Name: ext_conf; Type: TABLE DATA; Schema: public; Owner: postgres',
    'COPY public.ext_conf (id) FROM stdin;',
    '1',
    '\\.',
    '',
  ].join('\n')
  const contents = await readDumpContents(script(text))
  t.same(
    [...contents],
    [
      ['shop.items', 3],
      ['we;ird.Tab le', 1],
      ['public.empty', 0],
    ],
  )
  const restored = new Map([
    ['shop.items', 3],
    ['we;ird.Tab le', 0],
    ['public.other', 1],
  ])
  t.same(compareContents(contents, restored), {
    ok: false,
    tables: 3,
    rows: 4,
    missingTables: ['public.empty'],
    extraTables: ['public.other'],
    countMismatches: [{ table: 'we;ird.Tab le', dump: 1, restored: 0 }],
  })
  t.equal(compareContents(contents, new Map(contents)).ok, true)
})

t.test('file names, set stamps and paths inside BACKUP_DIR', async (t) => {
  const taken = new Set<string>()
  t.equal(fileNameFor('steward', 'plain', taken), 'steward.sql')
  t.equal(fileNameFor('../etc/passwd', 'plain', taken), '_._etc_passwd.sql', 'no slash, never hidden')
  t.equal(fileNameFor('steward', 'plain', taken), 'steward_2.sql', 'unique within a set')
  t.equal(fileNameFor('données', 'custom', taken), 'donn_es.dump')
  t.equal(fileNameFor('x', 'gzip', taken), 'x.sql.gz')
  t.equal(stamp(new Date('2026-01-02T03:04:05.678Z')), '20260102_030405')

  const dir = await tempDir(t)
  await fs.mkdir(path.join(dir, 'manual/backup_20260101_000000'), { recursive: true })
  await fs.writeFile(path.join(dir, 'manual/backup_20260101_000000/a.sql'), 'x')
  t.equal(
    await resolveInside(dir, 'manual/backup_20260101_000000/a.sql'),
    path.join(await fs.realpath(dir), 'manual/backup_20260101_000000/a.sql'),
  )
  await t.rejects(resolveInside(dir, '../outside'), /outside BACKUP_DIR/)
  await t.rejects(resolveInside(dir, '/etc/passwd'), /outside BACKUP_DIR/)
  await fs.symlink('/etc', path.join(dir, 'manual/link'))
  await t.rejects(resolveInside(dir, 'manual/link/hostname'), /leads outside BACKUP_DIR/)
})

t.test('ranges, ETags and the download file name', async (t) => {
  t.same(parseRange(undefined, 10), { kind: 'full' })
  t.same(parseRange('bytes=2-4', 10), { kind: 'partial', start: 2, end: 4 })
  t.same(parseRange('bytes = 2 - 4', 10), { kind: 'partial', start: 2, end: 4 })
  t.same(parseRange('bytes=-3', 10), { kind: 'partial', start: 7, end: 9 })
  t.same(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' })
  t.same(parseRange('bytes=-', 10), { kind: 'full' })
  t.ok(noneMatch('W/"a", "b"', '"b"'))
  t.notOk(noneMatch('"a"', '"b"'))
  t.notOk(noneMatch(undefined, '"b"'))
  const backup = (database: string) =>
    ({
      id: 1,
      database,
      format: 'plain',
      setDir: 'daily/backup_20260102_030405',
      file: 'daily/backup_20260102_030405/x.sql',
    }) as StoredBackup
  t.equal(contentDisposition(backup('shop')), 'attachment; filename="shop-20260102_030405.sql"')
  t.equal(
    contentDisposition(backup('bö"se')),
    `attachment; filename="b__se-20260102_030405.sql"; filename*=UTF-8''b%C3%B6%22se-20260102_030405.sql`,
  )
})

t.test('a pg_dump that ignores SIGTERM is killed, and its temporary file removed', async (t) => {
  const fake = await fakePgDump(t)
  await fake.setMode('stubborn')
  const dir = await tempDir(t)
  const pgDump: Tool = { name: 'pg_dump', path: path.join(fake.dir, 'pg_dump'), version: '15.18', major: 15 }
  const controller = new AbortController()
  const dumping = dumpToFile({
    pgDump,
    args: pgDumpArgs('plain'),
    env: {},
    file: path.join(dir, 'x.sql'),
    runId: '7',
    signal: controller.signal,
    killGraceMs: 300,
  })
  const pid = await eventually(async () => (await fake.pid()) ?? undefined, 5000, 'pg_dump to start')
  t.same(await fs.readdir(dir), ['.x.sql.7.tmp'])
  const aborted = Date.now()
  controller.abort(new Error('cancelled by test'))
  await t.rejects(dumping, /cancelled by test/)
  t.ok(Date.now() - aborted >= 250, 'SIGTERM was ignored; SIGKILL came after the grace period')
  t.notOk(isAlive(pid))
  t.same(await fs.readdir(dir), [], 'no temporary file, no final file')
})

t.test('anomalies: far from the median of at least three previous sizes', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(anomalyOf(10, [100, 100]), null, 'fewer than 3 previous sets: no verdict')
  t.same(anomalyOf(49, [100, 100, 100]), { reason: 'smaller', bytes: 49, medianBytes: 100 })
  t.equal(anomalyOf(50, [100, 100, 100]), null, '50 % is not below 50 %')
  t.equal(anomalyOf(300, [100, 100, 100]), null)
  t.equal(anomalyOf(315, [100, 90, 110, 5000]), null, 'the median, not the mean: one outlier moves nothing')
  t.same(anomalyOf(316, [100, 90, 110, 5000]), { reason: 'larger', bytes: 316, medianBytes: 105 })
})

t.test('the temporary copies of interrupted restores are swept after a day', async (t) => {
  const dir = await tempDir(t)
  const tmp = path.join(dir, '.restore-tmp')
  await fs.mkdir(tmp)
  await fs.writeFile(path.join(tmp, 'old.tmp'), 'x')
  await fs.writeFile(path.join(tmp, 'new.tmp'), 'x')
  const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000)
  await fs.utimes(path.join(tmp, 'old.tmp'), twoDaysAgo, twoDaysAgo)
  const log = { info: () => {} } as unknown as Parameters<typeof sweepRestoreTemp>[1]
  t.same(await sweepRestoreTemp(dir, log), ['old.tmp'])
  t.same(await fs.readdir(tmp), ['new.tmp'])
  t.same(await sweepRestoreTemp(path.join(dir, 'nowhere'), log), [], 'no directory, nothing to do')
})

t.test('downloads of encrypted files and of globals are named for what they hold', async (t) => {
  const base = { id: 1, database: 'shop', setDir: 'manual/backup_20260102_030405', format: 'plain' }
  t.equal(
    contentDisposition({ ...base, scope: 'database', encrypted: true } as StoredBackup),
    'attachment; filename="shop-20260102_030405.sql.age"',
  )
  t.equal(
    contentDisposition({ ...base, scope: 'globals', encrypted: false } as StoredBackup),
    'attachment; filename="globals-20260102_030405.sql"',
  )
})
