// Timeouts and cancels reach a real pg_dump child: it is stopped (SIGTERM, SIGKILL after 10 s), its
// temporary file removed, no backup recorded, and the run ends timeout / cancelled.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'
import t from 'tap'
import { jobs as registered } from '../src/app.js'
import { defineJob } from '../src/engine/job.js'
import type { Run } from '../src/engine/run-store.js'
import { databaseBackup } from '../src/features/backups/database-backup.js'
import { buildTestApp, createTestDatabase, eventually } from './helper.js'

/** The real backup job with a timeout short enough to test. */
const hastyBackup = defineJob({ ...databaseBackup, name: 'hasty-backup', timeoutMs: 1500, maxAttempts: 1 })

/** pg_dump processes started by this test process. */
async function ourPgDumps(): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat)
    if (match?.[1] === 'pg_dump' && Number(match[2]) === process.pid) pids.push(Number(entry))
  }
  return pids
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))
}

t.test('cancel and timeout stop a pg_dump blocked on a lock', async (t) => {
  const backupDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-abort-'))
  t.teardown(() => fs.rm(backupDir, { recursive: true, force: true }))
  const databaseUrl = await createTestDatabase(t)
  const app = await buildTestApp(t, {
    databaseUrl,
    jobs: [...registered, hastyBackup],
    env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: backupDir },
  })
  // pg_dump takes ACCESS SHARE locks on every table: an ACCESS EXCLUSIVE lock held here stalls it.
  const locker = postgres(databaseUrl, { max: 1, onnotice: () => {} })
  t.teardown(() => locker.end({ timeout: 1 }))
  await locker`create table blocker (id int)`
  let release!: () => void
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const locked = new Promise<void>((resolve) => {
    void locker
      .begin(async (tx) => {
        await tx`lock table blocker in access exclusive mode`
        resolve()
        await released
      })
      .catch(() => {})
  })
  await locked
  t.teardown(() => release())

  const waitFor = (id: number, states: string[]) =>
    eventually(
      async () => {
        const run = (await app.inject(`/runs/${id}`)).json() as Run
        return states.includes(run.state) ? run : undefined
      },
      15_000,
      `run ${id} to reach ${states.join('|')}`,
    )

  const backup = (
    await app.inject({
      method: 'POST',
      url: '/jobs/database-backup/runs',
      payload: { args: { type: 'manual' } },
    })
  ).json()
  await waitFor(backup.id, ['running'])
  await eventually(async () => ((await ourPgDumps()).length > 0 ? true : undefined), 5000, 'pg_dump to start')
  const cancel = await app.inject({ method: 'POST', url: `/runs/${backup.id}/cancel` })
  t.equal(cancel.statusCode, 202)
  const cancelled = await waitFor(backup.id, ['cancelled', 'failed', 'succeeded'])
  t.equal(cancelled.state, 'cancelled')
  await eventually(
    async () => ((await ourPgDumps()).length === 0 ? true : undefined),
    12_000,
    'pg_dump to exit',
  )
  t.same(await filesUnder(backupDir), [], 'no file, temporary or final, is left')

  const hasty = (
    await app.inject({
      method: 'POST',
      url: '/jobs/hasty-backup/runs',
      payload: { args: { type: 'manual' } },
    })
  ).json()
  const timedOut = await waitFor(hasty.id, ['failed', 'succeeded'])
  t.equal(timedOut.error?.code, 'timeout')
  await eventually(
    async () => ((await ourPgDumps()).length === 0 ? true : undefined),
    12_000,
    'pg_dump to exit',
  )
  t.same(await filesUnder(backupDir), [], 'no file is left after the timeout')
  t.same((await app.inject('/backups')).json().items, [], 'no backup is listed')
})
