// The cluster-wide cap on restore checks. Each check restores a full copy of a database into a
// scratch database on the server it protects, so at most BACKUP_VERIFY_CONCURRENCY (default 1) run
// at once across every instance: a check holds one of that many session advisory locks, on a
// connection reserved for it for the check's duration. The lock lives and dies with that session,
// so a process that crashes (or loses its connection) holds none.
import { setTimeout as sleep } from 'node:timers/promises'
import type { ReservedSql, Sql } from 'postgres'
import { Conflict } from '../../../lib/errors.js'

// The advisory lock's two keys: this class, and the slot (0 … limit - 1).
const VERIFY_LOCK = "hashtext('steward.backups.verify')"
const POLL_MS = 1000

/** Every slot is taken: another restore check is running, on this instance or another. */
export class VerifyBusy extends Conflict {
  readonly code = 'verify_busy'
}

export interface SlotOptions {
  /** BACKUP_VERIFY_CONCURRENCY */
  limit: number
  /** Wait for a slot (drills) instead of failing with VerifyBusy (requests); stops when it aborts. */
  wait?: { signal: AbortSignal; onWait?: () => void; pollMs?: number }
}

/** Runs `work` while holding a restore-check slot. */
export async function withVerifySlot<T>(sql: Sql, options: SlotOptions, work: () => Promise<T>): Promise<T> {
  const conn = await sql.reserve()
  try {
    const slot = await acquire(conn, options)
    try {
      return await work()
    } finally {
      await conn`select pg_advisory_unlock(${conn.unsafe(VERIFY_LOCK)}, ${slot}::int)`.catch(() => {})
    }
  } finally {
    conn.release()
  }
}

async function trySlots(conn: ReservedSql, limit: number): Promise<number | null> {
  for (let slot = 0; slot < limit; slot++) {
    const [row] = await conn<{ locked: boolean }[]>`
      select pg_try_advisory_lock(${conn.unsafe(VERIFY_LOCK)}, ${slot}::int) as locked`
    if (row?.locked) return slot
  }
  return null
}

async function acquire(conn: ReservedSql, { limit, wait }: SlotOptions): Promise<number> {
  const slot = await trySlots(conn, limit)
  if (slot !== null) return slot
  if (!wait) {
    const running = limit === 1 ? 'a restore check is' : `${limit} restore checks are`
    throw new VerifyBusy(
      `${running} already running (BACKUP_VERIFY_CONCURRENCY=${limit}, across all instances); ` +
        'try again when it has finished',
    )
  }
  wait.onWait?.()
  for (;;) {
    // Polled rather than blocked in pg_advisory_lock: a slot may free up under any of the keys.
    await sleep(wait.pollMs ?? POLL_MS, undefined, { signal: wait.signal }).catch((err) => {
      wait.signal.throwIfAborted() // the run's own reason (cancelled, timeout), not an AbortError
      throw err
    })
    const free = await trySlots(conn, limit)
    if (free !== null) return free
  }
}
