// A database-backup run you can watch: a ~500 MB database dumped while the test reads the run, whose
// progress (bytes stored, of the databases' estimated size) grows reading after reading and ends at
// the bytes the set really holds; the run's log says what was dumped, how big, with which sha256.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { backupDir, backupsOf, connect, databaseName, type RunView } from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'

interface Progress {
  done: number
  total: number | null
  unit: string
  updatedAt: string
}

interface WatchedRun extends RunView {
  progress: Progress | null
}

interface LogLine {
  seq: number
  level: string
  message: string
  fields: Record<string, unknown> | null
}

/** Rows of 1 KiB of md5 hex: incompressible enough, and short enough to stay out of TOAST. */
const ROWS = 480_000

async function logOf(app: FastifyInstance, id: number): Promise<LogLine[]> {
  const lines: LogLine[] = []
  for (let after = 0; ; ) {
    const page = (await app.inject(`/runs/${id}/logs?after=${after}&limit=1000`)).json()
    lines.push(...page.items)
    if (page.nextCursor === null) return lines
    after = Number(page.nextCursor)
  }
}

t.test('a backup of a ~500 MB database reports its bytes as it writes them', async (t) => {
  const url = await createTestDatabase(t)
  const source = connect(t, url)
  const started = Date.now()
  // Unlogged: no WAL to write, so the table fills at the speed of the heap. pg_dump dumps its rows.
  await source`
    create unlogged table big as
    select g, repeat(md5(g::text), 32) as payload from generate_series(1, ${ROWS}) g`
  const [size] = await source<
    { bytes: number }[]
  >`select pg_database_size(current_database())::float8 as bytes`
  t.comment(`created ${Math.round((size?.bytes ?? 0) / 2 ** 20)} MiB in ${(Date.now() - started) / 1000} s`)
  t.ok((size?.bytes ?? 0) > 450 * 2 ** 20, 'the database is about 500 MB')

  const app = await buildTestApp(t, {
    env: {
      SCHEDULER_ENABLED: 'false',
      RUN_POLL_MS: '100',
      BACKUP_DIR: await backupDir(t),
      BACKUP_DATABASES: databaseName(url),
    },
  })
  const res = await app.inject({
    method: 'POST',
    url: '/jobs/database-backup/runs',
    payload: { args: { type: 'manual' } },
  })
  t.equal(res.statusCode, 202)
  const id: number = res.json().id

  // Read the run as an operator's screen would, until it ends.
  const readings: Progress[] = []
  let run: WatchedRun
  const deadline = Date.now() + 80_000
  for (;;) {
    run = (await app.inject(`/runs/${id}`)).json()
    if (run.state !== 'queued' && run.state !== 'running') break
    const last = readings.at(-1)
    if (run.progress && run.progress.updatedAt !== last?.updatedAt) readings.push(run.progress)
    if (Date.now() > deadline) throw new Error('the backup did not end within 80 s')
    await sleep(100)
  }
  t.equal(run.state, 'succeeded', run.error?.message ?? 'succeeded')
  t.comment(`readings while running: ${readings.map((p) => p.done).join(', ')}`)

  const growing = readings.filter((p) => p.done > 0)
  t.ok(growing.length >= 3, `at least 3 readings with bytes while it ran (${growing.length})`)
  const dones = growing.map((p) => p.done)
  t.same(
    dones,
    [...new Set(dones)].sort((a, b) => a - b),
    'each reading is larger than the one before',
  )
  for (const p of growing) {
    t.equal(p.unit, 'bytes')
    t.ok((p.total ?? 0) > 400 * 2 ** 20, 'total: the estimated size of the database')
  }

  const stored = run.result?.bytes as number
  t.ok(stored > 450 * 2 ** 20, 'the dump holds the ~500 MB')
  t.match(run.progress, { done: stored, total: stored, unit: 'bytes' }, 'it ends at the bytes stored')

  const [made] = backupsOf(run)
  const lines = await logOf(app, id)
  const dumped = lines.find((l) => l.message === 'database dumped')
  t.match(dumped?.fields, {
    database: databaseName(url),
    bytes: made?.bytes,
    sha256: made?.sha256,
    seconds: Number,
  })
  t.ok(
    lines.some((l) => l.message === 'backup started' && l.fields?.estimatedBytes === growing[0]?.total),
    'the start line gives the estimate the progress counts against',
  )
  await source`drop table big`
})
