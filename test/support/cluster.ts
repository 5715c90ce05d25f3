// Shared by the multi-process tests (cluster, crash): fast heartbeats, stopping servers, holding a
// lock that keeps cache-clear running, waiting for a run's state through the API.
import postgres from 'postgres'
import type { Run } from '../../src/engine/run-store.js'
import { eventually } from '../helper.js'
import type { ServerProcess } from './process.js'

export const FAST = {
  RUN_HEARTBEAT_MS: '300',
  RUN_STALE_MS: '1500',
  RUN_POLL_MS: '200',
  SCHEDULER_TIMEZONE: 'UTC',
}

export async function stopAll(servers: ServerProcess[]) {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL')
  await Promise.all(servers.map((s) => s.exited))
}

/** Holds an ACCESS EXCLUSIVE lock on analysis_cache, so cache-clear runs block until released. */
export async function lockCache(url: string) {
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

export async function runState(
  server: ServerProcess,
  id: number,
  states: string[],
  ms = 10_000,
): Promise<Run> {
  return await eventually(
    async () => {
      const run = await server.json<Run>(`/runs/${id}`)
      return states.includes(run.state) ? run : undefined
    },
    ms,
    `run ${id} to reach ${states.join('|')}`,
  )
}
