// `steward backup restore` as an operator runs it: src/cli.ts in a child process against the test
// server, restoring sets the backup job made (refusals and failures are called in this process). A restore must give back every table and row, refuse an
// existing database without touching it, bring back roles with --globals, decrypt with --identity and
// read the off-site copy when the local one is gone.
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { generateIdentity, identityToRecipient } from 'age-encryption'
import type { FastifyInstance } from 'fastify'
import postgres, { type Sql } from 'postgres'
import t, { type Test } from 'tap'
import { loadConfig } from '../src/config.js'
import { COLUMN_CASE } from '../src/db/embedded.js'
import { createRemoteStore } from '../src/features/backups/offsite/remote-store.js'
import { describeKey } from '../src/features/backups/restore/bucket.js'
import { psqlErrors, withoutOwnRole } from '../src/features/backups/restore/client.js'
import {
  formatReport,
  parseRestoreArgs,
  type RestoreFrom,
  type RestoreReport,
} from '../src/features/backups/restore/command-line.js'
import { restoreBackup } from '../src/features/backups/restore/restore-command.js'
import {
  formatSets,
  parseSetsArgs,
  setsInBucket,
  setsInTable,
  size,
} from '../src/features/backups/restore/sets-command.js'
import {
  backUp,
  backupDir,
  connect,
  createEmptyDatabase,
  databaseName,
  fillDatabase,
  fingerprint,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'
import { childEnv, ROOT } from './support/process.js'
import { startS3 } from './support/s3.js'

interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `steward <args>` with only the given Steward and AWS settings (none of the machine's). */
async function steward(
  args: string[],
  env: Record<string, string>,
  command = ['--import', 'tsx', 'src/cli.ts'],
): Promise<CliResult> {
  const full = childEnv(env)
  for (const name of Object.keys(full)) {
    if (/^(DATABASE_URL|DATA_DIR|BACKUP_|AWS_)/.test(name) && !(name in env)) delete full[name]
  }
  const child = spawn(process.execPath, [...command, ...args], { cwd: ROOT, env: full })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  return { code, stdout, stderr }
}

function succeeded(t: Test, result: CliResult) {
  t.equal(result.code, 0, result.code === 0 ? 'exit status 0' : `failed:\n${result.stderr}`)
}

/**
 * The same restore called in this process (refusals and failures: quicker than a child process, and
 * counted by coverage). Settings as the command would read them from `env`.
 */
function inProcess(t: Test, env: Record<string, string>) {
  const sql = postgres(env.DATABASE_URL as string, { max: 2, onnotice: () => {}, transform: COLUMN_CASE })
  t.teardown(() => sql.end({ timeout: 5 }))
  const config = loadConfig(env)
  const deps = { sql, databaseUrl: env.DATABASE_URL as string, config, say: () => {} }
  return (options: RestoreFrom & { database: string; identityFile?: string; globals?: boolean }) =>
    restoreBackup({ ...deps, signal: new AbortController().signal }, { globals: false, ...options })
}

/**
 * A database name for this test, dropped (with whatever the restore left) at teardown; mixed case,
 * as an operator may choose.
 */
function targetName(t: Test, admin: Sql): string {
  const name = `Steward_Cli_${randomBytes(5).toString('hex')}`
  t.teardown(() => admin`drop database if exists ${admin(name)} with (force)`)
  return name
}

const urlOf = (url: string, database: string) => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const exists = async (sql: Sql, name: string) =>
  (await sql`select 1 from pg_database where datname = ${name}`).length > 0

interface Made {
  app: FastifyInstance
  appUrl: string
  dir: string
  database: { id: number; file: string }
  globals: { id: number; file: string }
}

/** An app backing up `sourceUrl` into a fresh BACKUP_DIR, and one manual set made by it. */
async function backedUp(t: Test, sourceUrl: string, env: Record<string, string> = {}): Promise<Made> {
  const dir = await backupDir(t)
  const appUrl = await createTestDatabase(t)
  const app = await buildTestApp(t, {
    databaseUrl: appUrl,
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_DATABASES: databaseName(sourceUrl), ...env },
  })
  const run = await backUp(app)
  t.equal(run.state, 'succeeded', run.error?.message ?? 'the backup run succeeded')
  // Read from the result itself: each set holds its database dumps and the server's globals.sql.
  const made = (run.result?.backups ?? []) as Array<{ id: number; file: string; scope: string }>
  const database = made.find((b) => b.scope === 'database')
  const globals = made.find((b) => b.scope === 'globals')
  if (!database || !globals) throw new Error(`no database and globals file in ${JSON.stringify(made)}`)
  return { app, appUrl, dir, database, globals }
}

t.test('restores a set into a new database, and refuses what it must', async (t) => {
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await fillDatabase(source)
  const expected = await fingerprint(source)
  const { appUrl, dir, database, globals } = await backedUp(t, sourceUrl)
  const env = { DATABASE_URL: appUrl, BACKUP_DIR: dir }
  const target = targetName(t, source)

  const restored = await steward(['backup', 'restore', String(database.id), '--database', target], env)
  succeeded(t, restored)
  t.match(
    restored.stdout,
    new RegExp(`^backup\\s+${database.id} \\(database ${databaseName(sourceUrl)}`, 'm'),
  )
  t.match(restored.stdout, /^source\s+local copy/m)
  t.match(restored.stdout, /^decrypted\s+no/m)
  t.match(restored.stdout, /^globals\s+not applied/m)
  const rows = Object.values(expected).reduce((sum, table) => sum + table.rows, 0)
  t.match(restored.stdout, new RegExp(`^tables\\s+${Object.keys(expected).length}$`, 'm'))
  t.match(restored.stdout, new RegExp(`^rows\\s+${rows}$`, 'm'))
  t.match(restored.stdout, /^result\s+ok/m)
  const copy = connect(t, urlOf(sourceUrl, target))
  t.same(await fingerprint(copy), expected, 'every table with the same rows')
  const [seq] = await copy`select last_value::int as v from shop.orders_id_seq`
  t.equal(seq?.v, 2000, 'sequences restored too')

  await copy`insert into public."Odd ""Name""" values (1000, 'added after the restore', '')`
  const touched = await fingerprint(copy)
  await copy.end()
  const again = await steward(['backup', 'restore', String(database.id), '--database', target], env)
  t.equal(again.code, 1, 'an existing database is refused')
  t.match(again.stderr, `database "${target}" already exists`)
  t.ok(await exists(source, target), 'and not dropped')
  t.same(await fingerprint(connect(t, urlOf(sourceUrl, target))), touched, 'nor changed')

  const sets = await steward(['backup', 'sets'], env)
  succeeded(t, sets)
  t.match(sets.stdout, /^1 set\(s\) in the backups table, newest first:$/m)
  const name = path.basename(database.file)
  t.match(sets.stdout, new RegExp(`^ {2}#${database.id} +${name} +\\S+ \\S+ {2}local$`, 'm'))
  t.match(
    sets.stdout,
    new RegExp(`^ {2}#${globals.id} +globals\\.sql +\\S+ \\S+ {2}roles \\(--globals\\); local$`, 'm'),
  )

  const ownDb = postgres(appUrl, { max: 1, onnotice: () => {}, transform: COLUMN_CASE })
  t.teardown(() => ownDb.end({ timeout: 5 }))
  t.equal(`${formatSets(await setsInTable(ownDb, 10))}\n`, sets.stdout, 'the same listing in this process')

  const restore = inProcess(t, env)
  await t.rejects(restore({ id: 987654321, database: `${target}_x` }), {
    exitCode: 1,
    message: 'there is no backup 987654321',
  })
  await t.rejects(restore({ id: globals.id, database: `${target}_x` }), {
    exitCode: 2,
    message: new RegExp(`^backup ${globals.id} is the roles file \\(globals\\)`),
  })
  t.notOk(await exists(source, `${target}_x`), 'refusals create nothing')
})

t.test('--globals brings back a dropped role first, and owners are kept', async (t) => {
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await fillDatabase(source)
  const role = `steward_cli_role_${randomBytes(4).toString('hex')}`
  await source.unsafe(`create role ${role} nologin`)
  await source.unsafe(
    `create table public.owned (id int primary key); alter table public.owned owner to ${role}`,
  )
  await source.unsafe(
    `insert into public.owned select generate_series(1, 25); grant select on shop.orders to ${role}`,
  )
  const expected = await fingerprint(source)
  const rolesAtBackup = await roleNames(source)
  const { appUrl, dir, database } = await backedUp(t, sourceUrl, { BACKUP_FORMAT: 'custom' })
  await source.unsafe(`reassign owned by ${role} to current_user; drop owned by ${role}; drop role ${role}`)
  const env = { DATABASE_URL: appUrl, BACKUP_DIR: dir }

  const withoutRoles = targetName(t, source)
  const failed = inProcess(t, env)({ id: database.id, database: withoutRoles })
  const message = new RegExp(
    `^restore failed: pg_restore exited .*role "${role}" does not exist.*\\n` +
      `the incomplete database "${withoutRoles}" was dropped\\n.*restore with --globals`,
    's',
  )
  await t.rejects(failed, { exitCode: 1, message }, 'a role the dump names is missing')
  t.notOk(await exists(source, withoutRoles), 'the failed restore left no database behind')

  const target = targetName(t, source)
  const before = new Set(await roleNames(source))
  const restored = await steward(
    ['backup', 'restore', String(database.id), '--database', target, '--globals'],
    env,
  )
  // Roles are server-wide: drop again the ones this restore brought back (ours, and any another test
  // file dropped meanwhile), after the database that uses them.
  const recreated = (await roleNames(source)).filter((r) => !before.has(r) && rolesAtBackup.includes(r))
  t.teardown(async () => {
    await source`drop database if exists ${source(target)} with (force)`
    for (const r of recreated) await source.unsafe(`drop role if exists "${r}"`).catch(() => {})
  })
  succeeded(t, restored)
  t.match(
    restored.stdout,
    /^globals\s+applied \(backup \d+; \d+ statement\(s\) failed; role \w+, used to connect/m,
  )
  t.match(restored.stdout, /^result\s+ok/m)
  t.ok(recreated.includes(role), 'the dropped role exists again')
  const copy = connect(t, urlOf(sourceUrl, target))
  t.same(await fingerprint(copy), expected, 'every table with the same rows')
  const [owner] = await copy`select tableowner from pg_tables where tablename = 'owned'`
  t.equal(owner?.tableowner, role, 'the table belongs to its role again')
  const [grant] = await copy`select has_table_privilege(${role}, 'shop.orders', 'select') as ok`
  t.equal(grant?.ok, true, 'and its grant is back')
})

async function roleNames(sql: Sql): Promise<string[]> {
  return (await sql<{ rolname: string }[]>`select rolname from pg_roles`).map((r) => r.rolname)
}

/** A real S3 store; the AWS SDK settings also go into this process's environment (the app uploads here). */
async function useS3(t: Test) {
  const s3 = await startS3(t)
  const aws = {
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'us-east-1',
  }
  for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name]
  Object.assign(process.env, aws)
  const remote = { BACKUP_REMOTE_URL: `s3://${s3.bucket}/steward`, BACKUP_REMOTE_FORCE_PATH_STYLE: 'true' }
  return { s3, aws, remote }
}

t.test(
  'an encrypted set whose local copy is gone: the off-site copy, decrypted with --identity',
  async (t) => {
    const { aws, remote } = await useS3(t)
    const identity = await generateIdentity()
    const sourceUrl = await createTestDatabase(t)
    const source = connect(t, sourceUrl)
    await fillDatabase(source)
    const expected = await fingerprint(source)
    const { app, appUrl, dir, database } = await backedUp(t, sourceUrl, {
      ...remote,
      BACKUP_COMPRESS: 'gzip',
      BACKUP_AGE_RECIPIENTS: await identityToRecipient(identity),
    })
    const row = (await app.inject(`/backups/${database.id}`)).json()
    t.match(row, { encrypted: true, remote: { state: 'uploaded' } }, 'encrypted and uploaded')
    await fs.rm(path.join(dir, path.dirname(database.file)), { recursive: true })
    const env = { DATABASE_URL: appUrl, BACKUP_DIR: dir, ...remote, ...aws }
    const target = targetName(t, source)
    const args = ['backup', 'restore', String(database.id), '--database', target]

    const restore = inProcess(t, env)
    await t.rejects(restore({ id: database.id, database: target }), {
      exitCode: 2,
      message: /^the backup is age-encrypted: give the private key with --identity/,
    })
    const keys = await backupDir(t)
    const wrongKey = path.join(keys, 'wrong.txt')
    await fs.writeFile(wrongKey, `${await generateIdentity()}\n`, { mode: 0o600 })
    await t.rejects(restore({ id: database.id, database: target, identityFile: wrongKey }), {
      exitCode: 1,
      message: `cannot decrypt ${database.file} with the given identity`,
    })
    t.notOk(await exists(source, target), 'nothing created before the file decrypts')

    const key = path.join(keys, 'key.txt')
    await fs.writeFile(key, `# the backups' private key\n${identity}\n`, { mode: 0o600 })
    const restored = await steward([...args, '--identity', key], env)
    succeeded(t, restored)
    t.match(restored.stdout, /^source\s+off-site copy \(s3:\/\/steward-test\/steward\/manual\/backup_/m)
    t.match(restored.stdout, /^decrypted\s+yes/m)
    t.match(restored.stdout, /^result\s+ok/m)
    t.same(
      await fingerprint(connect(t, urlOf(sourceUrl, target))),
      expected,
      'every table with the same rows',
    )
    t.same(await fs.readdir(path.join(dir, '.restore-tmp')).catch(() => []), [], 'no temporary file left')
  },
)

t.test('disaster recovery: a new machine with only the bucket and the key', async (t) => {
  const { s3, aws, remote } = await useS3(t)
  const identity = await generateIdentity()
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await fillDatabase(source)
  // A role of the old server that owns a table: only --globals brings it back on the new one.
  const role = `steward_dr_role_${randomBytes(4).toString('hex')}`
  await source.unsafe(`create role ${role} nologin`)
  await source.unsafe(
    `create table public.owned (id int primary key); alter table public.owned owner to ${role}`,
  )
  await source.unsafe('insert into public.owned select generate_series(1, 25)')
  const expected = await fingerprint(source)
  const rolesAtBackup = await roleNames(source)
  const { app, dir, database, globals } = await backedUp(t, sourceUrl, {
    ...remote,
    BACKUP_FORMAT: 'custom',
    BACKUP_AGE_RECIPIENTS: await identityToRecipient(identity),
  })
  const row = (await app.inject(`/backups/${database.id}`)).json()
  t.match(row, { encrypted: true, remote: { state: 'uploaded' } }, 'encrypted and uploaded')
  const objectUrl = `s3://${s3.bucket}/${row.remote.key}`
  const setDir = path.dirname(database.file)
  // The old machine is gone: its BACKUP_DIR, Steward's database with the backups table, the role.
  await fs.rm(dir, { recursive: true, force: true })
  await source.unsafe(`reassign owned by ${role} to current_user; drop owned by ${role}; drop role ${role}`)
  const keys = await backupDir(t)
  const key = path.join(keys, 'key.txt')
  await fs.writeFile(key, `${identity}\n`, { mode: 0o600 })
  // Its replacement: a server with an empty database, no BACKUP_DIR, no BACKUP_REMOTE_URL.
  const emptyUrl = await createEmptyDatabase(t, source, sourceUrl)
  const tmp = await backupDir(t)
  const machine = {
    DATABASE_URL: emptyUrl,
    BACKUP_DIR: path.join(dir, 'not-there'),
    BACKUP_REMOTE_FORCE_PATH_STYLE: 'true',
    TMPDIR: tmp,
    ...aws,
  }

  const listed = await steward(['backup', 'sets', '--remote'], { ...remote, ...aws })
  succeeded(t, listed)
  t.match(listed.stdout, /^1 set\(s\) in s3:\/\/steward-test\/steward\/, newest first:$/m)
  t.match(listed.stdout, new RegExp(`^${setDir} {2}\\S+Z {2}2 file\\(s\\), encrypted \\(age\\)$`, 'm'))
  t.match(listed.stdout, new RegExp(`^ {2}s3://steward-test/steward/${setDir}/$`, 'm'))
  t.match(listed.stdout, new RegExp(`^ {2}${path.basename(database.file)} +\\d+\\.\\d (KiB|MiB)$`, 'm'))
  t.match(listed.stdout, /^ {2}globals\.sql\.age +\d+(\.\d KiB| bytes) {2}roles \(--globals\)$/m)
  const named = await steward(['backup', 'sets', '--remote', `s3://${s3.bucket}/steward/`, '-n', '1'], {
    BACKUP_REMOTE_FORCE_PATH_STYLE: 'true',
    ...aws,
  })
  t.equal(named.stdout, listed.stdout, 'the bucket named on the command line, without BACKUP_REMOTE_URL')
  const here = await setsInBucket(loadConfig(remote), undefined, 10)
  t.equal(`${formatSets(here)}\n`, listed.stdout, 'the same listing in this process')
  t.equal(formatSets({ place: 'x', sets: [] }), 'no backup sets in x')

  const noTable = await steward(['backup', 'sets'], machine)
  t.equal(noTable.code, 2, 'the backups table is only read where there is one')
  t.match(noTable.stderr, /has no backups table: .*or use --remote/)

  const target = targetName(t, source)
  const before = new Set(await roleNames(source))
  const restored = await steward(
    ['backup', 'restore', objectUrl, '--database', target, '--globals', '--identity', key],
    machine,
  )
  const recreated = (await roleNames(source)).filter((r) => !before.has(r) && rolesAtBackup.includes(r))
  t.teardown(async () => {
    await source`drop database if exists ${source(target)} with (force)`
    for (const r of recreated) await source.unsafe(`drop role if exists "${r}"`).catch(() => {})
  })
  succeeded(t, restored)
  t.match(
    restored.stdout,
    new RegExp(`^backup\\s+none: an off-site object \\(database ${databaseName(sourceUrl)}, manual, `, 'm'),
  )
  t.match(restored.stdout, new RegExp(`^file\\s+${database.file} \\(custom, \\d+ bytes, sha256 ok\\)$`, 'm'))
  t.match(restored.stdout, `source     off-site copy (${objectUrl})`)
  t.match(restored.stdout, /^decrypted\s+yes/m)
  t.match(restored.stdout, new RegExp(`^globals\\s+applied \\(${globals.file}; \\d+ statement`, 'm'))
  t.match(restored.stdout, /^result\s+ok/m)
  t.match(restored.stderr, `temporary copies go to ${tmp}`)
  t.ok(recreated.includes(role), 'the role is back')
  const copy = connect(t, urlOf(sourceUrl, target))
  t.same(await fingerprint(copy), expected, 'every table with the same rows')
  const [owner] = await copy`select tableowner from pg_tables where tablename = 'owned'`
  t.equal(owner?.tableowner, role, 'owned by its role again')
  const empty = connect(t, emptyUrl)
  const [tables] = await empty`select count(*)::int as n from pg_tables where schemaname = 'public'`
  t.equal(tables?.n, 0, "no Steward table was created in DATABASE_URL's database")
  const leftovers = (await fs.readdir(tmp)).filter((f) => f.startsWith('steward-restore-'))
  t.same(leftovers, [], 'the temporary directory is gone (tsx keeps its cache there too)')

  // A key relative to BACKUP_REMOTE_URL, and --latest, in this process.
  const relative = { ...machine, ...remote, BACKUP_AGE_IDENTITY_FILE: key }
  const restore = inProcess(t, relative)
  const byKey = targetName(t, source)
  const report = await restore({ object: database.file, database: byKey })
  t.equal(report.comparison.ok, true, 'a key relative to BACKUP_REMOTE_URL')
  t.equal(report.backup.object, objectUrl)
  const latest = targetName(t, source)
  const newest = await restore({ latest: databaseName(sourceUrl), database: latest })
  t.equal(newest.backup.object, objectUrl, '--latest finds the same file')
  t.same(await fingerprint(connect(t, urlOf(sourceUrl, latest))), expected)

  const missing = `s3://${s3.bucket}/steward/daily/backup_20260101_000000/${path.basename(database.file)}`
  const gone = await steward(['backup', 'restore', missing, '--database', `${target}_x`, '-i', key], {
    ...machine,
    DATABASE_URL: urlOf(sourceUrl, `steward_not_yet_${randomBytes(3).toString('hex')}`),
  })
  t.equal(gone.code, 1, 'a missing object: exit status 1')
  t.match(gone.stderr, /does not exist: using the server's "postgres" database instead/)
  t.match(gone.stderr, `steward: there is no object ${missing} (or no bucket steward-test)`)
  t.notOk(await exists(source, `${target}_x`), 'and nothing was created')

  const refuse = (options: Parameters<typeof restore>[0], exitCode: number, message: string | RegExp) =>
    t.rejects(restore(options), { exitCode, message }, JSON.stringify(options))
  await refuse({ object: `${setDir}/globals.sql.age`, database: `${target}_x` }, 2, /is the roles file/)
  await refuse(
    { object: `s3://${s3.bucket}/steward/${setDir}/`, database: `${target}_x` },
    2,
    /names a set, not a file/,
  )
  await refuse({ object: `${setDir}/notes.txt`, database: `${target}_x` }, 2, /is not a backup file/)
  await refuse({ latest: 'nothing_here', database: `${target}_x` }, 1, /^no file of database "nothing_here"/)
  const noRemote = inProcess(t, machine)
  await t.rejects(noRemote({ object: database.file, database: `${target}_x` }), {
    exitCode: 2,
    message: /is a key relative to BACKUP_REMOTE_URL, and BACKUP_REMOTE_URL is not set/,
  })

  // An object whose bytes differ from its sha256 metadata is refused before anything is created.
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3')
  const client = new S3Client({ forcePathStyle: true, region: 'us-east-1' })
  t.teardown(() => client.destroy())
  const damaged = `steward/${setDir}/damaged.sql`
  const sha256 = createHash('sha256').update('something else').digest('hex')
  await client.send(
    new PutObjectCommand({ Bucket: s3.bucket, Key: damaged, Body: 'select 1;\n', Metadata: { sha256 } }),
  )
  await refuse(
    // With --globals: the set's globals.sql.age is found (and proved) beside it first.
    { object: `${setDir}/damaged.sql`, database: `${target}_x`, globals: true },
    1,
    /^the remote copy of .*damaged\.sql is damaged: 10 bytes, sha256 [0-9a-f]+; the object's metadata says 10 bytes/,
  )
  await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: damaged, Body: 'select 1;\n' }))
  await refuse({ object: `${setDir}/damaged.sql`, database: `${target}_x` }, 1, /has no sha256 metadata/)
  t.notOk(await exists(source, `${target}_x`), 'refusals create nothing')
})

t.test('a tampered dump or roles file cannot run commands on this host: psql runs restricted', async (t) => {
  const sourceUrl = await createTestDatabase(t)
  const source = connect(t, sourceUrl)
  await source`create table public.small (id int primary key)`
  const { app, appUrl, dir, database, globals } = await backedUp(t, sourceUrl)
  const markers: string[] = []
  // Someone with write access to the backups (the bucket, say) appends a shell command to each file
  // and records the new checksums, so every integrity check passes.
  for (const made of [database, globals]) {
    const marker = path.join(dir, `pwned-${made.id}`)
    markers.push(marker)
    const [row] = await app.sql<{ file: string }[]>`select file from backups where id = ${made.id}`
    const file = path.join(dir, (row as { file: string }).file)
    t.notMatch(file, /\.gz$|\.age$/, 'a plain, unencrypted file')
    await fs.appendFile(file, `\n\\! touch ${marker}\n`)
    const body = await fs.readFile(file)
    await app.sql`
      update backups set bytes = ${body.length}, sha256 = ${createHash('sha256').update(body).digest('hex')}
      where id = ${made.id}`
  }
  const target = targetName(t, source)
  const env = { DATABASE_URL: appUrl, BACKUP_DIR: dir }
  const result = await steward(
    ['backup', 'restore', String(database.id), '--database', target, '--globals'],
    env,
  )
  t.equal(result.code, 1, 'the restore fails')
  t.match(result.stderr, /restricted/)
  for (const marker of markers) {
    t.notOk(await fs.stat(marker).catch(() => null), `${path.basename(marker)}: the command never ran`)
  }
  t.notOk(await exists(source, target), 'the incomplete database was dropped')
})

t.test('the bin launcher runs the same command', async (t) => {
  const help = await steward(['backup', 'restore', '--help'], {}, ['bin/steward.js'])
  succeeded(t, help)
  t.match(
    help.stdout,
    /^usage: steward backup restore <backup id \| s3:\/\/bucket\/…\/<file> \| <key>> --database/,
  )
})

t.test('the command line and the summary', async (t) => {
  t.same(parseRestoreArgs(['12', '--database', 'shop_restored', '--globals', '-i', 'key.txt']), {
    id: 12,
    database: 'shop_restored',
    identityFile: 'key.txt',
    globals: true,
  })
  const url = 's3://bucket/prefix/daily/backup_20261128_010000/shop.sql.age'
  t.same(parseRestoreArgs([url, '-d', 'shop']), { object: url, database: 'shop', globals: false })
  t.same(parseRestoreArgs(['daily/backup_20261128_010000/shop.dump', '-d', 'shop']), {
    object: 'daily/backup_20261128_010000/shop.dump',
    database: 'shop',
    globals: false,
  })
  t.same(parseRestoreArgs(['--latest', 'shop', '-d', 'shop_2']), {
    latest: 'shop',
    database: 'shop_2',
    globals: false,
  })
  const refused = (argv: string[], message: string) =>
    t.throws(() => parseRestoreArgs(argv), { exitCode: 2, message: new RegExp(message) }, argv.join(' '))
  refused(['12'], '--database <new name> is required')
  refused(['12', '13', '-d', 'x'], 'exactly one backup id')
  refused(['1e3', '-d', 'x'], 'not a backup id .* nor an off-site object')
  refused(['12', '-d', 'dbname=x'], 'letters, digits')
  refused(['12', '-d', 'x'.repeat(64)], 'at most 63 bytes')
  refused(['12', '-d', 'x', '--force'], "Unknown option '--force'")
  refused([url, '--latest', 'shop', '-d', 'x'], 'not both')
  refused(['--latest', '', '-d', 'x'], '--latest needs a database name')

  t.same(parseSetsArgs([]), { remote: false, limit: 10 })
  t.same(parseSetsArgs(['--remote', 's3://b/p', '-n', '3']), { remote: true, url: 's3://b/p', limit: 3 })
  const setsRefused = (argv: string[], message: string) =>
    t.throws(() => parseSetsArgs(argv), { exitCode: 2, message: new RegExp(message) }, argv.join(' '))
  setsRefused(['--limit', '0'], 'a positive integer')
  setsRefused(['s3://b/p'], 'listed with --remote')
  setsRefused(['--remote', 'b/p'], 'not an s3://bucket/prefix URL')

  const store = createRemoteStore({ url: 's3://bucket/prefix' })
  t.teardown(() => store.close())
  t.match(describeKey(store, 'prefix/daily/backup_20261128_010000/shop.sql.gz.age', 7), {
    url: 's3://bucket/prefix/daily/backup_20261128_010000/shop.sql.gz.age',
    setDir: 'daily/backup_20261128_010000',
    file: 'daily/backup_20261128_010000/shop.sql.gz.age',
    scope: 'database',
    database: 'shop',
    format: 'gzip',
    encrypted: true,
    createdAt: '2026-11-28T01:00:00.000Z',
    bytes: 7,
  })
  t.match(describeKey(store, 'a/b/hourly/backup_20261128_010000_42/globals.sql'), {
    scope: 'globals',
    format: 'plain',
    encrypted: false,
  })
  t.match(describeKey(store, 'daily/backup_20261128_010000/x.dump'), { format: 'custom', database: 'x' })
  for (const key of [
    'daily/backup_2026_01/shop.sql',
    'daily/backup_20261128_010000/shop.txt',
    'daily/backup_20261128_010000/.shop.sql.1.tmp',
    'daily/backup_20261128_010000/.sql',
    'backup_20261128_010000/shop.sql',
  ])
    t.equal(describeKey(store, key), null, key)
  t.equal(size(512), '512 bytes')
  t.equal(size(12_890_123), '12.3 MiB')

  const backup = { id: 7, database: 'shop', kind: 'daily', createdAt: '2026-01-02T01:00:00.000Z' }
  const report = {
    backup: {
      ...backup,
      setDir: 'daily/backup_20260102_010000',
      file: 'daily/backup_20260102_010000/shop.dump',
      object: 's3://bucket/prefix/daily/backup_20260102_010000/shop.dump',
    },
    target: 'shop_restored',
    source: 'remote',
    decrypted: true,
    globals: {
      id: 8,
      file: 'daily/backup_20260102_010000/globals.sql',
      errors: ['role "app" already exists', 'role "app" already exists'],
      keptRole: 'postgres',
    },
    comparison: {
      ok: false,
      tables: 3,
      rows: 12,
      missingTables: ['public.gone'],
      extraTables: ['public.extra'],
      countMismatches: [{ table: 'public.items', dump: 10, restored: 9 }],
    },
    seconds: 2.25,
  } as unknown as RestoreReport
  const text = formatReport(report)
  t.match(text, /^backup\s+7 \(database shop, daily, 2026-01-02T01:00:00.000Z\)$/m)
  t.match(
    text,
    /^source\s+off-site copy \(s3:\/\/bucket\/prefix\/daily\/backup_20260102_010000\/shop\.dump\)$/m,
  )
  t.match(text, /^globals\s+applied \(backup 8; 2 statement\(s\) failed; role postgres, used to connect/m)
  t.match(text, /^result\s+MISMATCH: database "shop_restored" kept for inspection$/m)
  t.match(text, /^ {2}globals: role "app" already exists$/m)
  t.equal(text.match(/already exists/g)?.length, 1, 'the same error once')
  t.match(text, /^ {2}missing table: public\.gone$/m)
  t.match(text, /^ {2}table not in the dump: public\.extra$/m)
  t.match(text, /^ {2}public\.items: 10 rows in the dump, 9 restored$/m)
  const found = formatReport({
    ...report,
    backup: { ...report.backup, id: null },
    globals: { ...(report.globals as NonNullable<RestoreReport['globals']>), id: null },
  })
  t.match(found, /^backup\s+none: an off-site object \(database shop, daily, 2026-01-02T01:00:00.000Z\)$/m)
  t.match(found, /^globals\s+applied \(daily\/backup_20260102_010000\/globals\.sql; 2 statement/m)

  const globals =
    "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nALTER ROLE postgres WITH SUPERUSER PASSWORD 'x';\n"
  t.same(withoutOwnRole(globals, 'postgres'), {
    script: 'CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\n',
    skipped: true,
  })
  t.same(withoutOwnRole(globals, '"Admin"').skipped, false)
  t.same(psqlErrors('psql:<stdin>:3: ERROR:  role "app" already exists\nNOTICE:  x\nERROR:  y'), [
    'role "app" already exists',
    'y',
  ])
})
