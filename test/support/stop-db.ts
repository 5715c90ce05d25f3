// tap `after`: stops the test run's embedded PostgreSQL (or drops the template on an external one).
import fs from 'node:fs/promises'
import postgres from 'postgres'
import { STATE_FILE, type TestDbState } from './state.js'

const text = await fs.readFile(STATE_FILE, 'utf8').catch(() => null)
if (text) {
  const state = JSON.parse(text) as TestDbState
  if (state.pid) {
    try {
      process.kill(state.pid, 'SIGTERM')
    } catch {}
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline && alive(state.pid)) await new Promise((r) => setTimeout(r, 50))
  } else {
    const admin = postgres(state.adminUrl, { max: 1, onnotice: () => {} })
    await admin`drop database if exists ${admin(state.template)}`
    await admin.end()
    await fs.rm(STATE_FILE, { force: true })
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
