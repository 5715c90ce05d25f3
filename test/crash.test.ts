// Crash recovery across real Steward processes: a run whose process is killed (kill -9) mid-run or
// mid-backup is resolved by a survivor or by the restarted process, and no partial backup is listed.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import type { Run } from '../src/engine/run-store.js'
import { createTestDatabase, eventually } from './helper.js'
import { FAST, lockCache, runState, stopAll } from './support/cluster.js'
import { startServer } from './support/process.js'

t.test('kill -9 mid-run: a survivor fails the run as abandoned; so does the restarted process', async (t) => {
  const url = await createTestDatabase(t)
  const env = { ...FAST, DATABASE_URL: url, SCHEDULER_ENABLED: 'false' }
  const victim = await startServer({ ...env, INSTANCE_ID: 'victim' })
  const survivor = await startServer({ ...env, INSTANCE_ID: 'survivor' })
  t.teardown(() => stopAll([victim, survivor]))

  const unlock = await lockCache(url)
  const run = await victim.json<Run>('/jobs/cache-clear/runs', { method: 'POST', body: {} })
  await runState(victim, run.id, ['running'])
  victim.child.kill('SIGKILL')
  const killedAt = Date.now()
  const abandoned = await runState(survivor, run.id, ['failed'], 45_000)
  t.equal(abandoned.error?.code, 'abandoned')
  t.match(abandoned.error?.message, /victim/)
  t.ok(Date.now() - killedAt < 45_000, `resolved ${Date.now() - killedAt} ms after the kill`)
  await unlock()

  // The only process dies and comes back: the restarted process resolves its own orphan.
  await survivor.json('/schedules', { method: 'GET' })
  const unlockAgain = await lockCache(url)
  const second = await survivor.json<Run>('/jobs/cache-clear/runs', { method: 'POST', body: {} })
  await runState(survivor, second.id, ['running'])
  survivor.child.kill('SIGKILL')
  await survivor.exited
  const restarted = await startServer({ ...env, INSTANCE_ID: 'restarted' })
  t.teardown(() => stopAll([restarted]))
  const resolved = await runState(restarted, second.id, ['failed'], 45_000)
  t.equal(resolved.error?.code, 'abandoned')
  await unlockAgain()
})

t.test(
  'kill -9 mid-backup: resolved by a survivor, retried, and no partial backup is ever listed',
  async (t) => {
    const url = await createTestDatabase(t)
    const backupDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-cluster-backup-'))
    t.teardown(() => fs.rm(backupDir, { recursive: true, force: true }))
    const env = {
      ...FAST,
      DATABASE_URL: url,
      SCHEDULER_ENABLED: 'false',
      BACKUP_DIR: backupDir,
      RETRY_BASE_MS: '200',
    }
    const victim = await startServer({ ...env, INSTANCE_ID: 'victim' })
    const survivor = await startServer({ ...env, INSTANCE_ID: 'survivor' })
    t.teardown(() => stopAll([victim, survivor]))

    const unlock = await lockCache(url) // pg_dump waits for the lock on analysis_cache
    const run = await victim.json<Run>('/jobs/database-backup/runs', {
      method: 'POST',
      body: { args: { type: 'manual' } },
    })
    await runState(victim, run.id, ['running'])
    await eventually(
      async () =>
        (await fs.readdir(backupDir, { recursive: true })).some((f) => String(f).endsWith('.tmp'))
          ? true
          : undefined,
      10_000,
      'pg_dump to start writing',
    )
    victim.child.kill('SIGKILL')
    const abandoned = await runState(survivor, run.id, ['failed'], 45_000)
    t.equal(abandoned.error?.code, 'abandoned')
    t.same(
      (await survivor.json<{ items: unknown[] }>('/backups')).items,
      [],
      'the interrupted dump is not listed',
    )

    await unlock()
    const retry = await eventually(
      async () => {
        const [latest] = (await survivor.json<{ items: Run[] }>('/runs?job=database-backup&trigger=retry'))
          .items
        return latest && latest.state === 'succeeded' ? latest : undefined
      },
      30_000,
      'the retry to succeed',
    )
    t.equal(retry.retryOf, run.id)
    const backups = (
      await survivor.json<{ items: { id: number; sha256: string; bytes: number }[] }>('/backups')
    ).items
    t.ok(backups.length > 0)
    for (const backup of backups) {
      const body = Buffer.from(await (await survivor.fetch(`/backups/${backup.id}/download`)).arrayBuffer())
      t.equal(body.length, backup.bytes)
      t.equal(createHash('sha256').update(body).digest('hex'), backup.sha256, 'every listed backup is whole')
    }
  },
)
