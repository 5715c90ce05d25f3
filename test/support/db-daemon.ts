// Runs the test run's private embedded PostgreSQL for as long as the test run lasts: started by
// start-db.ts (tap's `before`), stopped by stop-db.ts (tap's `after`) with SIGTERM. It prepares a
// migrated template database from which every test file clones its own database in milliseconds.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'
import { startEmbeddedPostgres } from '../../src/db/embedded.js'
import { migrate } from '../../src/db/migrate.js'
import { TEMPLATE_DB, type TestDbState } from './state.js'

// Passed by start-db.ts: our own parent is not the tap runner.
const STATE_FILE = process.argv[2] as string

// Never outlive a test run that forgot to stop us.
const MAX_LIFETIME_MS = 60 * 60_000

async function main() {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-test-'))
  const db = await startEmbeddedPostgres({ dataDir, database: TEMPLATE_DB, persistent: false })
  const stop = async () => {
    await db.stop().catch((err) => process.stderr.write(`stop: ${String(err)}\n`))
    await fs.rm(dataDir, { recursive: true, force: true })
    await fs.rm(STATE_FILE, { force: true })
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  setTimeout(stop, MAX_LIFETIME_MS).unref()
  try {
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    await migrate(sql)
    await sql.end()
  } catch (err) {
    process.stderr.write(`migrating the template failed: ${String(err)}\n`)
    await stop()
  }
  const state: TestDbState = { adminUrl: db.adminUrl, template: TEMPLATE_DB, pid: process.pid, dataDir }
  await fs.writeFile(STATE_FILE, JSON.stringify(state))
  // Keep the event loop alive until we are told to stop.
  setInterval(() => {}, 60_000)
}

main().catch((err) => {
  process.stderr.write(`test database failed to start: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
