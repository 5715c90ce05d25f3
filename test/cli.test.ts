// The steward command on the embedded database, with the server running and without it: db-url,
// psql, migrate, token (and its npm run alias), and the audit actor of command actions.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'
import t from 'tap'
import { processesMentioning, runCommand, startServer } from './support/process.js'

function steward(args: string[], env: Record<string, string>, command = process.execPath) {
  return runCommand(command, command === 'npm' ? args : ['--import', 'tsx', 'src/cli.ts', ...args], env)
}

t.test('steward db-url, psql, migrate and token reach the embedded database', async (t) => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-cli-'))
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
  const env = { DATA_DIR: dataDir, STEWARD_ADMIN_TOKEN: '' }
  const server = await startServer({ DATA_DIR: dataDir })

  const url = await steward(['db-url'], env)
  t.equal(url.code, 0, url.stderr)
  t.match(url.stdout.trim(), /^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/steward$/)
  const sql = postgres(url.stdout.trim(), { max: 1, onnotice: () => {} })
  const [row] = await sql<{ schedules: number }[]>`select count(*)::int as schedules from schedules`
  await sql.end()
  t.ok((row?.schedules ?? 0) > 0, "the URL leads to Steward's own database")

  const psql = await steward(
    ['psql', '-At', '-c', 'select count(*) > 0 from job_runs where false or true'],
    env,
  )
  t.equal(psql.code, 0, psql.stderr)
  t.match(psql.stdout, /^[tf]\n$/, 'psql ran the query on the running server')
  const failing = await steward(['psql', '-c', 'select * from no_such_table'], env)
  t.not(failing.code, 0, "psql's failure is the command's")
  t.match(failing.stderr, /no_such_table/)

  const migrate = await steward(['migrate'], env)
  t.equal(migrate.code, 0, migrate.stderr)
  t.equal(migrate.stdout, 'the database is up to date\n')

  const created = await steward(['token', 'create', '--name', 'ops', '--role', 'viewer'], env)
  t.equal(created.code, 0, created.stderr)
  const token = created.stdout.trim()
  const me = await fetch(`${server.base}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.same(await me.json(), { name: 'ops', role: 'viewer' }, 'the running server accepts it')
  const audit = (await server.json<{ items: { actor: string; action: string }[] }>('/audit?target=ops')).items
  t.same(audit, [{ ...audit[0], actor: `cli:${os.userInfo().username}`, action: 'token.create' }])
  const alias = await steward(['run', '-s', 'token', '--', 'list'], env, 'npm')
  t.equal(alias.code, 0, alias.stderr)
  t.match(alias.stdout, /^ops\s+viewer/m, '`npm run token` is the same command')

  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
  const stopped = await steward(['db-url'], env)
  t.equal(stopped.code, 1)
  t.match(stopped.stderr, /the embedded database of .* is not running .*start Steward \(npm start\)/)
  const session = await steward(['psql', '-At', '-c', 'select 40 + 2'], env)
  t.equal(session.code, 0, session.stderr)
  t.equal(session.stdout, '42\n', 'psql starts the embedded database for the session')
  t.same(await processesMentioning(path.join(dataDir, 'pg')), [], 'and stops it afterwards')

  const usage = await steward(['--help'], env)
  for (const command of ['token create', 'migrate', 'psql', 'db-url', 'backup restore'])
    t.match(usage.stdout, `steward ${command}`, `--help lists ${command}`)
})
