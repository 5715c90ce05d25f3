// Paced runs across real Steward processes with the real pg_dump: per-job concurrency holds
// cluster-wide (never more pg_dump processes alive than the limit, every run succeeds), a limit
// changed on one instance reaches the other, and unique triggers racing through two instances get
// one run. pg_dump is wrapped by a script that logs when each one starts and ends.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { Run } from '../src/engine/run-store.js'
import { createTestDatabase, eventually } from './helper.js'
import { FAST, runState, stopAll } from './support/cluster.js'
import { type ServerProcess, startServer } from './support/process.js'

/** A BACKUP_PG_BIN_DIR whose pg_dump logs "start|end <pid> <ns>" around the real one. */
async function loggingTools(
  t: Test,
): Promise<{ dir: string; intervals: () => Promise<Array<[number, number]>> }> {
  // The real tools: PostgreSQL 15's, as the embedded server is 15, else whatever PATH has.
  const bin = (name: string) =>
    existsSync(`/usr/lib/postgresql/15/bin/${name}`)
      ? `/usr/lib/postgresql/15/bin/${name}`
      : execFileSync('sh', ['-c', `command -v ${name}`])
          .toString()
          .trim()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-pg-dump-log-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const log = path.join(dir, 'log')
  await fs.writeFile(
    path.join(dir, 'pg_dump'),
    `#!/bin/sh
case "$1" in --version|-V) exec "${bin('pg_dump')}" "$@" ;; esac
echo "start $$ $(date +%s%N)" >> "${log}"
"${bin('pg_dump')}" "$@"
rc=$?
echo "end $$ $(date +%s%N)" >> "${log}"
exit $rc
`,
    { mode: 0o755 },
  )
  for (const tool of ['pg_dumpall', 'pg_restore', 'psql']) await fs.symlink(bin(tool), path.join(dir, tool))
  return {
    dir,
    async intervals() {
      const lines = (await fs.readFile(log, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean)
      const starts = new Map<string, number>()
      const spans: Array<[number, number]> = []
      for (const line of lines) {
        const [what, pid, ns] = line.split(' ') as [string, string, string]
        const at = Number(BigInt(ns) / 1_000_000n)
        if (what === 'start') starts.set(pid, at)
        else spans.push([starts.get(pid) as number, at])
      }
      return spans
    },
  }
}

/** The most intervals open at any one moment. */
function maxOverlap(spans: Array<[number, number]>): number {
  const edges = spans.flatMap(([from, to]) => [
    [from, 1],
    [to, -1],
  ])
  // An end and a start at the same millisecond: count the end first.
  edges.sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number))
  let open = 0
  let most = 0
  for (const [, delta] of edges) {
    open += delta as number
    most = Math.max(most, open)
  }
  return most
}

async function fireTriggers(servers: ServerProcess[], count: number, body: unknown): Promise<Run[]> {
  return await Promise.all(
    Array.from({ length: count }, (_, i) =>
      (servers[i % servers.length] as ServerProcess).json<Run>('/jobs/database-backup/runs', {
        method: 'POST',
        body,
      }),
    ),
  )
}

async function allEnded(server: ServerProcess, runs: Run[], ms = 120_000): Promise<Run[]> {
  return await Promise.all(
    runs.map((run) => runState(server, run.id, ['succeeded', 'failed', 'cancelled'], ms)),
  )
}

t.test(
  '30 backups triggered at once through two instances: one pg_dump at a time, all succeed',
  async (t) => {
    const url = await createTestDatabase(t)
    const tools = await loggingTools(t)
    const backupDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-paced-backups-'))
    t.teardown(() => fs.rm(backupDir, { recursive: true, force: true }))
    const env = {
      ...FAST,
      DATABASE_URL: url,
      SCHEDULER_ENABLED: 'false',
      BACKUP_DIR: backupDir,
      BACKUP_PG_BIN_DIR: tools.dir,
      RATE_LIMIT_MUTATIONS: '100000',
    }
    const servers = await Promise.all(['a', 'b'].map((id) => startServer({ ...env, INSTANCE_ID: id })))
    t.teardown(() => stopAll(servers))
    const [a, b] = servers as [ServerProcess, ServerProcess]

    const manual = { args: { type: 'manual' } }
    const first = await fireTriggers(servers, 30, manual)
    t.equal(new Set(first.map((r) => r.id)).size, 30, '30 runs queued')
    const ended = await allEnded(a, first)
    t.same(
      ended.filter((r) => r.state !== 'succeeded').map((r) => [r.id, r.state, r.error]),
      [],
      'all 30 succeeded',
    )
    // Which instance runs each is not promised: the one whose run ends usually takes the next at
    // once (it pumps before the other hears of the free slot), so one may run all 30.
    t.ok(
      ended.every((r) => r.instance === 'a' || r.instance === 'b'),
      'each ran on one of the two instances',
    )
    const spans = await tools.intervals()
    t.equal(spans.length, 30, 'one pg_dump per run')
    t.equal(maxOverlap(spans), 1, 'never more than one pg_dump alive')

    // Two at a time: changed on a, seen by b within 2 s.
    const patched = await a.json<{ concurrency: number }>('/jobs/database-backup', {
      method: 'PATCH',
      body: { concurrency: 2 },
    })
    t.equal(patched.concurrency, 2)
    const seenAt = Date.now()
    await eventually(
      async () =>
        (await b.json<{ concurrency: number }>('/jobs/database-backup')).concurrency === 2 ? true : undefined,
      2500,
      'the other instance to see concurrency 2',
    )
    t.ok(Date.now() - seenAt <= 2500, `seen by the other instance after ${Date.now() - seenAt} ms`)
    await fs.rm(path.join(tools.dir, 'log'), { force: true })
    const second = await fireTriggers(servers, 12, manual)
    const endedAgain = await allEnded(b, second)
    t.ok(
      endedAgain.every((r) => r.state === 'succeeded'),
      'all 12 succeeded',
    )
    const overlap = maxOverlap(await tools.intervals())
    t.ok(overlap <= 2, `at most two pg_dump alive (${overlap})`)

    // unique: racing requests through both instances get one run.
    const uniqueBody = { args: { type: 'manual' }, unique: true }
    const raced = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (servers[i % 2] as ServerProcess).fetch('/jobs/database-backup/runs', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(uniqueBody),
        }),
      ),
    )
    const statuses = raced.map((r) => r.status).sort()
    const ids = new Set(await Promise.all(raced.map(async (r) => ((await r.json()) as Run).id)))
    t.equal(ids.size, 1, 'one run for ten racing unique triggers')
    t.same(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 202])
    await allEnded(a, [{ id: [...ids][0] } as Run])
    for (const s of servers) t.notMatch(s.output(), /unhandled|uncaught/i)
  },
)
