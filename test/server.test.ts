// The real server process: `npm start`'s entry point with an embedded PostgreSQL, on a real port.
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { createTestDatabase, eventually, seededScheduleNames } from './helper.js'
import { childEnv, processesMentioning, ROOT, startServer } from './support/process.js'

t.test('npm start with no configuration: embedded PostgreSQL, clean shutdown, state kept', async (t) => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-server-'))
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
  const env = { DATA_DIR: dataDir, SCHEDULER_TIMEZONE: 'UTC' }

  const first = await startServer(env)
  t.ok(
    (await processesMentioning(path.join(dataDir, 'pg'))).length > 0,
    'embedded postgres runs under DATA_DIR/pg',
  )
  const schedules = (await (await first.fetch(`/schedules`)).json()) as { items: { name: string }[] }
  t.same(schedules.items.map((s) => s.name).sort(), seededScheduleNames())
  const edit = await first.fetch(`/schedules/cache-clear`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ cron: '45 3 * * *' }),
  })
  t.equal(edit.status, 200)
  const trigger = await first.fetch(`/jobs/cache-clear/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  })
  t.equal(trigger.status, 202)
  const { id } = (await trigger.json()) as { id: number }
  await eventually(async () => {
    const run = (await (await first.fetch(`/runs/${id}`)).json()) as { state: string }
    return run.state === 'succeeded' ? run : undefined
  })

  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0, 'SIGTERM exits 0')
  t.match(first.output(), /"msg":"run started"/)
  t.match(first.output(), /"msg":"run finished"/)
  t.same(await processesMentioning(path.join(dataDir, 'pg')), [], 'no postgres process is left behind')

  const second = await startServer(env)
  const kept = (await (await second.fetch(`/schedules/cache-clear`)).json()) as { cron: string }
  t.equal(kept.cron, '45 3 * * *', 'the edit survived the restart')
  const run = (await (await second.fetch(`/runs/${id}`)).json()) as { state: string }
  t.equal(run.state, 'succeeded', 'the run history survived the restart')
  second.child.kill('SIGINT')
  t.equal(await second.exited, 0, 'SIGINT exits 0')
  t.same(await processesMentioning(path.join(dataDir, 'pg')), [])
})

t.test('with DATABASE_URL it uses that server and starts no embedded one', async (t) => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-server-'))
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
  const server = await startServer({ DATA_DIR: dataDir, DATABASE_URL: await createTestDatabase(t) })
  t.equal((await server.fetch(`/health`)).status, 200)
  await t.rejects(fs.stat(path.join(dataDir, 'pg')), 'no embedded cluster was created')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('a bad configuration value stops start-up with a message naming the variable', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: childEnv({ PORT: 'eighty', SCHEDULER_TIMEZONE: 'UTC' }),
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 2)
  t.match(stderr, /PORT must be a whole number \(got "eighty"\)/)
})
