// The client tools (pg_dump, pg_dumpall, psql, pg_restore) get only the environment they use: PATH,
// HOME, locale, time zone and libpq's PG* variables. A token or key in Steward's own environment
// never reaches them, where any process of the same user could read it (/proc/<pid>/environ).
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { startTool } from '../src/features/backups/process.js'
import {
  connectionEnv,
  locateTool,
  parseDatabaseUrl,
  serverVersion,
  toolEnv,
} from '../src/features/backups/tools.js'
import { backUp, backupDir, backupsOf, connect } from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'

const SECRETS = {
  STEWARD_TEST_SECRET: 'the-secret-value-0123456789',
  AWS_SECRET_ACCESS_KEY: 'aws-secret-0123456789',
  EMBEDDINGS_API_KEY: 'embeddings-key-0123456789',
}

/** Sets these variables in this process for the test, as a deployment's environment would. */
function inParentEnv(t: Test, vars: Record<string, string>) {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  t.teardown(() => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
}

t.test('the environment built for a tool holds what libpq uses and no secret', async (t) => {
  inParentEnv(t, { ...SECRETS, PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/etc/ca.pem', LC_ALL: 'C.UTF-8' })
  const env = connectionEnv(parseDatabaseUrl('postgres://steward:pw@db.internal:6432/app'), 'shop')
  for (const name of Object.keys(SECRETS)) t.notOk(name in env, `${name} is not passed`)
  t.notOk(
    Object.values(env).some((v) => v?.includes('secret')),
    'no value holds a secret either',
  )
  t.match(env, {
    PATH: process.env.PATH,
    PGHOST: 'db.internal',
    PGPORT: '6432',
    PGUSER: 'steward',
    PGPASSWORD: 'pw',
    PGDATABASE: 'shop',
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: '/etc/ca.pem',
    LC_ALL: 'C.UTF-8',
  })
  t.same(
    Object.keys(toolEnv({ PATH: '/bin', HOME: '/h', TOKEN: 'x', PGPASSWORD: 'p', PGADMIN_X: 'y' })).sort(),
    ['HOME', 'PATH', 'PGPASSWORD'],
  )
})

t.test('a spawned tool sees that environment, not the parent process’s', async (t) => {
  inParentEnv(t, SECRETS)
  const env = connectionEnv(parseDatabaseUrl('postgres://steward:pw@127.0.0.1:5432/app'), 'app')
  const envTool = { name: 'psql' as const, path: '/usr/bin/env', version: '15', major: 15 }
  const proc = startTool(envTool, [], { env, signal: new AbortController().signal })
  let out = ''
  proc.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  await proc.exited
  t.match(out, /^PGPASSWORD=pw$/m, 'the child got its connection details')
  for (const [name, value] of Object.entries(SECRETS)) {
    t.notOk(out.includes(name), `${name} not in the child`)
    t.notOk(out.includes(value), `${name}'s value not in the child`)
  }
})

t.test('pg_dump and pg_dumpall run without the secrets, and the backup still works', async (t) => {
  // Wrappers that record the environment they were started with, then run the real tool.
  const sql = connect(t, await createTestDatabase(t))
  const server = await serverVersion(sql)
  const bin = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-env-bin-'))
  t.teardown(() => fs.rm(bin, { recursive: true, force: true }))
  for (const name of ['pg_dump', 'pg_dumpall', 'psql', 'pg_restore'] as const) {
    const real = await locateTool(name, server, { pathEnv: '' })
    const script = `#!/bin/sh\nenv > "$(dirname "$0")/${name}.$$.env"\nexec "${real.path}" "$@"\n`
    await fs.writeFile(path.join(bin, name), script, { mode: 0o755 })
  }
  inParentEnv(t, SECRETS)
  const dir = await backupDir(t)
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_PG_BIN_DIR: bin },
  })
  const run = await backUp(app)
  t.equal(run.state, 'succeeded', JSON.stringify(run.error))
  t.equal(backupsOf(run).length, 1, 'the database was dumped')
  const verify = await app.inject({ method: 'POST', url: `/backups/${backupsOf(run)[0]?.id}/verify` })
  t.equal(verify.statusCode, 200)
  t.match(verify.json().verifyResult, { ok: true, restoredWith: 'psql' }, 'and it restores')
  const recorded = (await fs.readdir(bin)).filter((f) => f.endsWith('.env'))
  for (const tool of ['pg_dump', 'pg_dumpall', 'psql'])
    t.ok(
      recorded.some((f) => f.startsWith(`${tool}.`)),
      `${tool} ran through its wrapper`,
    )
  for (const file of recorded) {
    const text = await fs.readFile(path.join(bin, file), 'utf8')
    t.match(text, /^PATH=/m, `${file}: PATH is passed`)
    for (const [name, value] of Object.entries(SECRETS)) {
      t.notOk(text.includes(name) || text.includes(value), `${file}: no ${name}`)
    }
  }
})
