// tap `before`: provides the test run's PostgreSQL. With TEST_DATABASE_URL, a migrated template
// database is created on that server; otherwise a private embedded server is started.
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import { migrate } from '../../src/db/migrate.js'
import { STATE_FILE, type TestDbState } from './state.js'

const here = path.dirname(fileURLToPath(import.meta.url))

async function useExternal(url: string): Promise<void> {
  const template = `steward_template_${process.pid}`
  const admin = postgres(url, { max: 1, onnotice: () => {} })
  await admin`drop database if exists ${admin(template)}`
  await admin`create database ${admin(template)}`
  await admin.end()
  const target = new URL(url)
  target.pathname = `/${template}`
  const sql = postgres(target.toString(), { max: 1, onnotice: () => {} })
  await migrate(sql)
  await sql.end()
  const state: TestDbState = { adminUrl: url, template }
  await fs.writeFile(STATE_FILE, JSON.stringify(state))
}

async function startEmbedded(): Promise<void> {
  const logFile = STATE_FILE.replace(/\.json$/, '.log')
  const log = await fs.open(logFile, 'w')
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'db-daemon.ts'), STATE_FILE], {
    detached: true,
    // No coverage for test infrastructure stopped by a signal (see test/support/process.ts).
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', log.fd, log.fd],
  })
  let exited: number | null = null
  child.on('exit', (code) => {
    exited = code ?? 1
  })
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`test database exited (${exited}); see ${logFile}`)
    if (await fs.stat(STATE_FILE).catch(() => null)) {
      child.unref()
      await log.close()
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  child.kill('SIGTERM')
  throw new Error(`test database did not start within 60 s; see ${logFile}`)
}

await fs.mkdir(path.dirname(STATE_FILE), { recursive: true })
await fs.rm(STATE_FILE, { force: true })
const external = process.env.TEST_DATABASE_URL
if (external) await useExternal(external)
else await startEmbedded()
