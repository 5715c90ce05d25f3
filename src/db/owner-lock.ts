// One owner per DATA_DIR: the process that runs the embedded PostgreSQL of a data directory holds
// DATA_DIR/steward.pid (its pid and, on Linux, its start time). Another process that finds the
// file naming a live owner refuses to start and touches nothing; one that finds a dead owner's file
// (kill -9, a power cut) takes it over, and only then may treat a PostgreSQL still running there as
// a leftover to stop. The file is created with O_EXCL, so of two processes starting at once exactly
// one becomes the owner (and of two that both take over a dead owner's file, the one whose file
// is there afterwards).
import { readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'

export const OWNER_FILE = 'steward.pid'

/** DATA_DIR is owned by another live process. */
export class DataDirInUse extends Error {
  override name = 'DataDirInUse'
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`DATA_DIR ${dataDir} is in use by Steward pid ${pid}; stop it or use another DATA_DIR`)
  }
}

export interface OwnerLock {
  /** Removes the file if it is still ours. */
  release(): Promise<void>
}

interface Owner {
  pid: number
  /** Process start time (clock ticks since boot, /proc/<pid>/stat field 22); null where unknown. */
  startedAt: string | null
}

/** Takes DATA_DIR for this process, or throws DataDirInUse naming the live owner. */
export async function acquireOwnerLock(dataDir: string): Promise<OwnerLock> {
  await fs.mkdir(dataDir, { recursive: true })
  const file = path.join(dataDir, OWNER_FILE)
  const me: Owner = { pid: process.pid, startedAt: startTimeOf(process.pid) }
  const content = `${me.pid}\n${me.startedAt ?? ''}\n`
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(file, content, { flag: 'wx', mode: 0o644 })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const owner = await readOwner(file)
      if (owner && isLiveOwner(owner)) throw new DataDirInUse(dataDir, owner.pid)
      // The owner is gone: remove its file and race again for a fresh one.
      await fs.rm(file, { force: true })
      continue
    }
    // Two processes that both found the same dead owner may both have removed a file; whoever's
    // file is there now is the owner.
    const owner = await readOwner(file)
    if (owner?.pid !== me.pid) throw new DataDirInUse(dataDir, owner?.pid ?? 0)
    return lockOn(file, me.pid)
  }
  throw new Error(`could not take ${file}: other processes keep replacing it`)
}

function lockOn(file: string, pid: number): OwnerLock {
  return {
    async release() {
      const owner = await readOwner(file)
      if (owner?.pid === pid) await fs.rm(file, { force: true })
    },
  }
}

/** The live owner's pid of a data directory, or null when nobody owns it. */
export async function ownerOf(dataDir: string): Promise<number | null> {
  const owner = await readOwner(path.join(dataDir, OWNER_FILE))
  return owner && isLiveOwner(owner) ? owner.pid : null
}

async function readOwner(file: string): Promise<Owner | null> {
  const text = await fs.readFile(file, 'utf8').catch(() => null)
  if (text === null) return null
  const [pidLine = '', startLine = ''] = text.split('\n')
  const pid = Number(pidLine)
  if (!Number.isInteger(pid) || pid <= 0) return null
  return { pid, startedAt: startLine.trim() || null }
}

/**
 * Alive, not this process (a container restarted with the same pid finds its own old file), and the
 * same process that wrote the file: a reused pid has another start time.
 */
function isLiveOwner(owner: Owner): boolean {
  if (owner.pid === process.pid || !isAlive(owner.pid)) return false
  const startedAt = startTimeOf(owner.pid)
  return owner.startedAt === null || startedAt === null || startedAt === owner.startedAt
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces). */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19] ?? null
  } catch {
    return null
  }
}
