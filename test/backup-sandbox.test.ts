// Restore checks run as a role without rights: a new login role (steward_restore_…, member of the
// NOLOGIN role steward_restore) that owns the scratch database, never Steward's own (here a
// superuser). A hostile dump cannot run programs on the server, take back a superuser role, keep its
// role afterwards, or run psql meta-commands (\! …) on this host; ownership and grant lines are left
// out (they are not the data); extensions the backed-up database has are created for the role, and
// others it may not create itself fail.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import {
  backUp,
  backupDir,
  backupsOf,
  connect,
  createEmptyDatabase,
  databaseName,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'

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

async function verify(app: FastifyInstance, id: number) {
  const res = await app.inject({ method: 'POST', url: `/backups/${id}/verify` })
  return { status: res.statusCode, result: res.json().verifyResult, body: res.json() }
}

t.test('a hostile dump cannot act as a superuser; an ordinary one restores as the role', async (t) => {
  const dir = await backupDir(t)
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir } })
  const [me] = await app.sql<{ name: string; superuser: boolean }[]>`
    select current_user as name, rolsuper as superuser from pg_roles where rolname = current_user`
  t.equal(me?.superuser, true, "Steward's own role here is a superuser: the case that matters")

  const marker = path.join(os.tmpdir(), `steward-pwned-${randomBytes(4).toString('hex')}`)
  t.teardown(() => fs.rm(marker, { force: true }))
  const program = await crafted(app, dir, 'program', `COPY (SELECT 1) TO PROGRAM 'touch ${marker}';\n`)
  const ran = await verify(app, program)
  t.equal(ran.status, 200)
  t.match(ran.result, { ok: false, checksum: 'ok', error: { code: 'restore_failed' } })
  t.match(ran.result.error.message, /pg_execute_server_program|superuser/)
  t.equal(await fs.stat(marker).catch(() => null), null, 'the program never ran')

  // psql's meta-commands run on Steward's own host, beyond any role: psql refuses them all.
  for (const [name, line] of [
    ['shell', `\\! touch ${marker}`],
    ['pipe', `SELECT 1 \\g |touch ${marker}`],
    ['unrestrict', `\\unrestrict guess\n\\! touch ${marker}`],
  ] as const) {
    const meta = await verify(app, await crafted(app, dir, name, `SELECT 1;\n${line}\n`))
    t.match(meta.result, { ok: false, error: { code: 'restore_failed' } }, name)
    t.match(meta.result.error.message, /backslash commands are restricted/, name)
  }
  t.equal(await fs.stat(marker).catch(() => null), null, 'no command ran on this host')

  const setRole = await crafted(app, dir, 'set-role', `SET ROLE "${me?.name}";\n`)
  const escaped = await verify(app, setRole)
  t.match(escaped.result, { ok: false, error: { code: 'restore_failed' } })
  t.match(escaped.result.error.message, /permission denied to set role/)

  // The error names the role the restore ran as: it must be gone afterwards.
  const who = await crafted(
    app,
    dir,
    'who',
    "DO $$ BEGIN RAISE EXCEPTION 'restoring as [%]', session_user; END $$;\n",
  )
  const named = (await verify(app, who)).result.error.message as string
  const login = /restoring as \[([^\]]+)\]/.exec(named)?.[1] ?? ''
  t.match(login, /^steward_restore_\d+_\d+_[0-9a-f]+$/, 'a login role of its own')
  t.same(await app.sql`select 1 from pg_roles where rolname = ${login}`, [], 'dropped after the check')
  t.match(
    (
      await app.sql`select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = 'steward_restore'`
    )[0],
    { rolcanlogin: false, rolsuper: false, rolcreaterole: false, rolcreatedb: false },
    'steward_restore: a NOLOGIN role with nothing else',
  )

  // What pg_dump writes: owners and grants (left out: they are not the data), a COPY whose rows
  // read like statements (data: kept), and checks of who is restoring.
  const ordinary = await crafted(
    app,
    dir,
    'ordinary',
    [
      'RESET ROLE;',
      'RESET SESSION AUTHORIZATION;',
      "DO $$ BEGIN IF current_setting('is_superuser') = 'on' THEN RAISE EXCEPTION 'restored as a superuser'; END IF; END $$;",
      '-- Name: notes; Type: TABLE; Schema: public; Owner: postgres',
      'CREATE TABLE public.notes (id integer, body text);',
      `ALTER TABLE public.notes OWNER TO "${me?.name}";`,
      '-- Data for Name: notes; Type: TABLE DATA; Schema: public; Owner: postgres',
      'COPY public.notes (id, body) FROM stdin;',
      '1\tGRANT SELECT ON TABLE public.notes TO nobody;',
      '2\tALTER TABLE public.notes OWNER TO nobody;',
      '\\.',
      'GRANT pg_execute_server_program TO CURRENT_USER;',
      `REVOKE ALL ON TABLE public.notes FROM "${me?.name}";`,
      '',
    ].join('\n'),
  )
  const ok = await verify(app, ordinary)
  t.equal(ok.status, 200)
  t.match(
    ok.result,
    { ok: true, checksum: 'ok', restoredWith: 'psql', tables: 1, rows: 2 },
    JSON.stringify(ok.result),
  )
})

t.test('extensions the backed-up database has are created for the role; others fail', async (t) => {
  const adminUrl = await createTestDatabase(t)
  const sourceUrl = await createEmptyDatabase(t, connect(t, adminUrl), adminUrl)
  const source = connect(t, sourceUrl)
  // pg_buffercache is not a trusted extension: only a superuser may create it.
  await source.unsafe(`
    create extension pg_buffercache;
    create table items (id integer primary key, label text);
    insert into items select i, 'item ' || i from generate_series(1, 25) i;`)
  for (const [format, env] of [
    ['plain', {}],
    ['custom', { BACKUP_FORMAT: 'custom' }],
  ] as const) {
    const dir = await backupDir(t)
    const app = await buildTestApp(t, {
      env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_DATABASES: databaseName(sourceUrl), ...env },
    })
    const run = await backUp(app)
    t.equal(run.state, 'succeeded', JSON.stringify(run.error))
    const checked = await verify(app, backupsOf(run)[0]?.id as number)
    t.match(checked.result, { ok: true, tables: 1, rows: 25 }, `${format}: ${JSON.stringify(checked.result)}`)

    const other = await crafted(
      app,
      dir,
      `untrusted-${format}`,
      'CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public;\n',
    )
    const refused = await verify(app, other)
    t.match(refused.result, { ok: false, error: { code: 'restore_failed' } })
    t.match(refused.result.error.message, /permission denied to create extension "pg_stat_statements"/)
    await app.close()
  }
})
