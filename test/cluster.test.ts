// Several real Steward processes on one database: exactly-once fires, crash recovery after kill -9,
// graceful shutdown with jobs inside and beyond the grace period.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'
import t from 'tap'
import type { Run } from '../src/services/runs.js'
import { createTestDatabase, eventually } from './helper.js'
import { type ServerProcess, startServer } from './support/process.js'

const FAST = { RUN_HEARTBEAT_MS: '300', RUN_STALE_MS: '1500', RUN_POLL_MS: '200', SCHEDULER_TIMEZONE: 'UTC' }

async function stopAll(servers: ServerProcess[]) {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL')
  await Promise.all(servers.map((s) => s.exited))
}

/** Holds an ACCESS EXCLUSIVE lock on analysis_cache, so cache-clear runs block until released. */
async function lockCache(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  let release!: () => void
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const holding = new Promise<void>((locked) => {
    void sql
      .begin(async (tx) => {
        await tx`insert into analysis_cache (key, value, expires_at) values (${`k${Date.now()}`}, '{}', now() - interval '1 day')`
        await tx`lock table analysis_cache in access exclusive mode`
        locked()
        await released
      })
      .catch(() => {})
  })
  await holding
  return async () => {
    release()
    await sql.end({ timeout: 5 })
  }
}

async function runState(server: ServerProcess, id: number, states: string[], ms = 10_000): Promise<Run> {
  return await eventually(
    async () => {
      const run = await server.json<Run>(`/runs/${id}`)
      return states.includes(run.state) ? run : undefined
    },
    ms,
    `run ${id} to reach ${states.join('|')}`,
  )
}

t.test('three processes, one per-second schedule for 20 s: every fire runs once, none missing', async (t) => {
  const url = await createTestDatabase(t)
  const servers = await Promise.all(
    ['a', 'b', 'c'].map((id) => startServer({ ...FAST, DATABASE_URL: url, INSTANCE_ID: id })),
  )
  t.teardown(() => stopAll(servers))
  const [a] = servers as [ServerProcess]
  await a.json('/schedules', {
    method: 'POST',
    body: { name: 'tick', job: 'cache-clear', cron: '* * * * * *', overlap: 'allow' },
  })
  await new Promise((r) => setTimeout(r, 20_000))
  await a.json('/schedules/tick', { method: 'DELETE' })
  await new Promise((r) => setTimeout(r, 1500))
  const runs = (await a.json<{ items: Run[] }>('/runs?schedule=tick&limit=500')).items
  const fires = runs.map((r) => Date.parse(String(r.scheduledFor))).sort((x, y) => x - y)
  t.ok(fires.length >= 18, `${fires.length} fires in 20 s`)
  t.equal(new Set(fires).size, fires.length, 'no fire ran twice')
  const gaps = fires.slice(1).filter((f, i) => f - (fires[i] as number) !== 1000)
  t.same(gaps, [], 'no second was missed')
  t.ok(
    runs.every((r) => r.state === 'succeeded'),
    'every fire ran',
  )
  t.ok(runs.every((r) => ['a', 'b', 'c'].includes(String(r.instance))))
  for (const s of servers) t.notMatch(s.output(), /unhandled|uncaught/i)
})

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
  'SIGTERM: a job that ends within the grace period succeeds; one beyond it is interrupted and requeued',
  async (t) => {
    const url = await createTestDatabase(t)
    const env = { ...FAST, DATABASE_URL: url, SCHEDULER_ENABLED: 'false', SHUTDOWN_GRACE_MS: '1500' }

    const patient = await startServer(env)
    t.teardown(() => stopAll([patient]))
    const unlock = await lockCache(url)
    const inside = await patient.json<Run>('/jobs/cache-clear/runs', { method: 'POST', body: {} })
    await runState(patient, inside.id, ['running'])
    patient.child.kill('SIGTERM')
    setTimeout(() => void unlock(), 400)
    t.equal(await patient.exited, 0, 'exit 0')

    const impatient = await startServer(env)
    t.teardown(() => stopAll([impatient]))
    t.equal(
      (await impatient.json<Run>(`/runs/${inside.id}`)).state,
      'succeeded',
      'finished within the grace period',
    )
    const unlockAgain = await lockCache(url)
    const beyond = await impatient.json<Run>('/jobs/cache-clear/runs', { method: 'POST', body: {} })
    await runState(impatient, beyond.id, ['running'])
    const signalled = Date.now()
    impatient.child.kill('SIGTERM')
    const code = await impatient.exited
    t.equal(code, 0, 'exit 0')
    if (code !== 0) t.comment(impatient.output().slice(-4000))
    // The job is stuck in SQL, so it gets the full 12 s allowed for cleanup; it is not waited for.
    t.ok(Date.now() - signalled < 25_000, 'did not wait for the blocked job')
    await unlockAgain()

    const reader = await startServer({ ...env, RUN_POLL_MS: '60000' })
    t.teardown(() => stopAll([reader]))
    const interrupted = await reader.json<Run>(`/runs/${beyond.id}`)
    t.equal(interrupted.state, 'failed')
    t.equal(interrupted.error?.code, 'interrupted')
    const retries = (await reader.json<{ items: Run[] }>('/runs?trigger=retry')).items
    t.equal(retries[0]?.retryOf, beyond.id, 'queued again for whoever runs next')
  },
)

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
