// Process lifecycle on real processes: a signal to `npm start` reaches the server, one owner per
// DATA_DIR (a second process refuses and leaves the first alone; a kill -9 owner is recovered).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { freePort } from '../src/db/embedded.js'
import { acquireOwnerLock, DataDirInUse, isAlive, OWNER_FILE, ownerOf } from '../src/db/owner-lock.js'
import { TEST_ADMIN_TOKEN } from './helper.js'
import { processesMentioning, runCommand, startServer } from './support/process.js'

async function tempDataDir(t: Test): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-lifecycle-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  return dir
}

const run = async (command: string, args: string[], env: Record<string, string>) => {
  const { code, stdout, stderr } = await runCommand(command, args, env)
  return { code, output: stdout + stderr }
}

t.test('SIGTERM to `npm start` reaches the server: graceful stop, database stopped, exit 0', async (t) => {
  const dataDir = await tempDataDir(t)
  const server = await startServer({ DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: '2000' }, { via: 'npm start' })
  const nodePid = await ownerOf(dataDir)
  t.ok(nodePid, 'the server process owns DATA_DIR')
  t.not(nodePid, server.child.pid, 'npm is not the server: the signal has to travel')
  t.ok((await processesMentioning(path.join(dataDir, 'pg'))).length > 0, 'the embedded database runs')

  const started = Date.now()
  server.child.kill('SIGTERM') // to npm, as `docker stop` or a process manager does
  t.equal(await server.exited, 0, 'npm exits 0 once the server has stopped')
  t.ok(Date.now() - started < 2000 + 15_000, 'within SHUTDOWN_GRACE_MS and a few seconds')
  t.match(server.output(), /"signal":"SIGTERM","msg":"shutting down"/, 'the server got the signal')
  t.match(server.output(), /"msg":"stopped"/)
  t.notOk(isAlive(nodePid as number), 'no orphaned server')
  t.same(await processesMentioning(path.join(dataDir, 'pg')), [], 'the embedded database was stopped')
  await t.rejects(fs.stat(path.join(dataDir, OWNER_FILE)), 'DATA_DIR is released')
})

t.test('a second Steward on the same DATA_DIR refuses; a kill -9 owner is recovered', async (t) => {
  const dataDir = await tempDataDir(t)
  const env = { DATA_DIR: dataDir }
  const first = await startServer(env)
  const firstPid = first.child.pid as number

  const second = await run(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    ...env,
    PORT: String(await freePort()),
    STEWARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  })
  t.equal(second.code, 1, 'the second process exits non-zero')
  t.match(
    second.output,
    `steward: DATA_DIR ${dataDir} is in use by Steward pid ${firstPid}; stop it or use another DATA_DIR`,
  )
  t.notMatch(second.output, /embedded PostgreSQL started/, 'it touched nothing')
  const ready = await first.fetch('/ready')
  t.equal(ready.status, 200, 'the first one keeps its database')
  t.equal((await first.fetch('/runs')).status, 200)

  const tokens = await run('npm', ['run', '-s', 'token', '--', 'list'], env)
  t.equal(tokens.code, 0, `the token command works against the running owner: ${tokens.output}`)

  // kill -9: the server dies, its PostgreSQL keeps running and DATA_DIR/steward.pid stays behind.
  first.child.kill('SIGKILL')
  await first.exited
  t.ok((await processesMentioning(path.join(dataDir, 'pg'))).length > 0, 'an orphaned postgres is left')
  t.equal(await ownerOf(dataDir), null, 'a dead owner owns nothing')
  const third = await startServer(env)
  t.equal((await third.fetch('/runs')).status, 200, 'the next start recovers the directory')
  third.child.kill('SIGINT')
  t.equal(await third.exited, 0)
  t.same(await processesMentioning(path.join(dataDir, 'pg')), [])
})

t.test('the owner lock: live owners refuse, dead and reused pids are taken over', async (t) => {
  const dataDir = await tempDataDir(t)
  const file = path.join(dataDir, OWNER_FILE)
  const sleeper = spawn('sleep', ['60'])
  t.teardown(() => sleeper.kill())
  const pid = sleeper.pid as number
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const startedAt = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]

  await fs.writeFile(file, `${pid}\n${startedAt}\n`)
  await t.rejects(acquireOwnerLock(dataDir), new DataDirInUse(dataDir, pid), 'a live owner keeps it')
  t.equal(await fs.readFile(file, 'utf8'), `${pid}\n${startedAt}\n`, 'and its file is untouched')

  await fs.writeFile(file, `${pid}\n1\n`)
  const reused = await acquireOwnerLock(dataDir)
  t.equal(await ownerOf(dataDir), null, 'a live pid with another start time is a reused pid: taken over')
  t.match(await fs.readFile(file, 'utf8'), new RegExp(`^${process.pid}\\n`))
  await reused.release()
  await t.rejects(fs.stat(file), 'release removes the file')

  const gone = spawn('true')
  await new Promise((resolve) => gone.on('exit', resolve))
  await fs.writeFile(file, `${gone.pid}\n\n`)
  const taken = await acquireOwnerLock(dataDir)
  t.match(await fs.readFile(file, 'utf8'), new RegExp(`^${process.pid}\\n`), 'a dead owner is replaced')
  await fs.writeFile(file, `${pid}\n${startedAt}\n`)
  await taken.release()
  t.ok(await fs.stat(file), "release leaves another owner's file alone")
})
