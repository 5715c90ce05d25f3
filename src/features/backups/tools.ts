// The PostgreSQL client tools (pg_dump, pg_restore, psql): where they are, whether they are new
// enough for the server, and the environment that connects them to it. The password travels only in
// that environment (PGPASSWORD), never in argv, so it shows in no `ps` listing and no log line.
import { execFile } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import type { Sql } from 'postgres'

const run = promisify(execFile)

export type ToolName = 'pg_dump' | 'pg_dumpall' | 'pg_restore' | 'psql'

/**
 * A failure of a backup step; `code` becomes the run's error code. `retryable: false` when another
 * attempt cannot do better (no pg_dump, a database that does not exist): the run fails at once.
 */
export class BackupError extends Error {
  override name = 'BackupError'
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = true,
  ) {
    super(message)
  }
}

export interface Connection {
  hosts: string[]
  ports: string[]
  user?: string
  password?: string
  database?: string
  /** libpq environment variables from the URL's query (sslmode → PGSSLMODE, …). */
  extra: Record<string, string>
}

// URL query parameters libpq also understands, and the variables that carry them.
const QUERY_ENV: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslrootcert: 'PGSSLROOTCERT',
  sslcrl: 'PGSSLCRL',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
}

const decode = (s: string) => decodeURIComponent(s)

/**
 * Parses postgres://user:pass@host1:5432,host2/db?sslmode=require the way libpq does, including
 * several hosts and percent-encoded parts (postgres.js leaves the database name encoded).
 */
export function parseDatabaseUrl(url: string): Connection {
  const match = /^postgres(?:ql)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(
    url,
  )
  if (!match) throw new BackupError('bad_url', 'DATABASE_URL is not a postgres:// URL', false)
  const [, user, password, hostList = '', database, query = ''] = match
  const hosts: string[] = []
  const ports: string[] = []
  for (const part of hostList.split(',').filter(Boolean)) {
    const hostPort = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(decode(part))
    hosts.push((hostPort?.[1] ?? '').replace(/^\[(.*)\]$/, '$1'))
    ports.push(hostPort?.[2] ?? '')
  }
  const conn: Connection = { hosts, ports, extra: {} }
  if (user) conn.user = decode(user)
  if (password !== undefined) conn.password = decode(password)
  if (database) conn.database = decode(database)
  for (const [key, value] of new URLSearchParams(query)) {
    if (key === 'host') conn.hosts = value.split(',')
    else if (key === 'port') conn.ports = value.split(',')
    else if (key === 'user') conn.user = value
    else if (key === 'password') conn.password = value
    else if (key === 'dbname') conn.database = value
    else if (key === 'ssl' && /^(true|require)$/.test(value)) conn.extra.PGSSLMODE = 'require'
    else if (QUERY_ENV[key]) conn.extra[QUERY_ENV[key]] = value
  }
  return conn
}

// Client tools get only the part of the process environment they use: the search path, locale and
// time zone, HOME (~/.pgpass, ~/.postgresql/ certificates) and libpq's own variables. Everything else
// (STEWARD_ADMIN_TOKEN, AWS keys, API keys) stays out of their environment, where any process of the
// same user could read it (/proc/<pid>/environ). This is the child's context rather than Steward's
// configuration, so it is read here and not in config.ts.
const PASSED = new Set(['PATH', 'HOME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR'])
// libpq's own variables (PGSSLMODE, PGSSLROOTCERT … are the SSL* ones), and the locale's LC_*.
const LIBPQ = [
  'HOST HOSTADDR PORT DATABASE USER PASSWORD PASSFILE SERVICE SERVICEFILE SYSCONFDIR OPTIONS APPNAME',
  'CONNECT_TIMEOUT CLIENTENCODING TARGETSESSIONATTRS LOADBALANCEHOSTS CHANNELBINDING REQUIREAUTH',
  'REQUIRESSL SSL[A-Z]* GSSENCMODE GSSLIB GSSDELEGATION KRBSRVNAME TZ DATESTYLE LOCALEDIR',
].join(' ')
const PASSED_PATTERN = new RegExp(`^(LC_[A-Z]+|PG(${LIBPQ.replaceAll(' ', '|')}))$`)

/** The environment every client tool starts from: the allowed variables of `source` (process.env). */
export function toolEnv(source: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(source)) {
    if (value !== undefined && (PASSED.has(name) || PASSED_PATTERN.test(name))) env[name] = value
  }
  return env
}

/**
 * The environment for a client tool connecting to `database` on the configured server. Values from
 * the URL override inherited PG* variables; parts the URL leaves out fall back to them, as they do
 * for Steward's own connection.
 */
export function connectionEnv(conn: Connection, database: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...toolEnv(),
    ...conn.extra,
    PGDATABASE: database,
    PGAPPNAME: 'steward-backup',
  }
  const ports = conn.ports.some(Boolean) ? conn.ports.map((p) => p || '5432') : []
  if (conn.hosts.some(Boolean)) env.PGHOST = conn.hosts.map((h) => h || 'localhost').join(',')
  else env.PGHOST ??= 'localhost' // postgres.js's default: TCP to localhost, not libpq's socket
  if (ports.length > 0) env.PGPORT = ports.join(',')
  if (conn.user) env.PGUSER = conn.user
  if (conn.password !== undefined) env.PGPASSWORD = conn.password
  return env
}

export interface ServerVersion {
  major: number
  text: string
}

export async function serverVersion(sql: Sql): Promise<ServerVersion> {
  const [row] = await sql<{ num: string; text: string }[]>`
    select current_setting('server_version_num') as num, current_setting('server_version') as text`
  const num = Number(row?.num)
  return { major: Math.floor(num / 10_000), text: String(row?.text).split(' ')[0] as string }
}

export interface Tool {
  name: ToolName
  path: string
  version: string
  major: number
}

/** "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15.18 */
export function parseToolVersion(output: string): { version: string; major: number } | null {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(output)
  if (!match) return null
  return { version: match[2] ? `${match[1]}.${match[2]}` : (match[1] as string), major: Number(match[1]) }
}

export interface LocateOptions {
  /** BACKUP_PG_BIN_DIR: when set, the only place looked in. */
  binDir?: string
  /** Directories searched after PATH; the server's major version is substituted for {major}. */
  versionDirs?: string[]
  pathEnv?: string
}

// Where distributions put each major version's client tools (Debian/Ubuntu, RHEL, Homebrew).
const VERSION_DIRS = [
  '/usr/lib/postgresql/{major}/bin',
  '/usr/pgsql-{major}/bin',
  '/opt/homebrew/opt/postgresql@{major}/bin',
  '/usr/local/opt/postgresql@{major}/bin',
]

function candidates(name: ToolName, major: number, options: LocateOptions): string[] {
  if (options.binDir) return [path.join(options.binDir, name)]
  const pathDirs = (options.pathEnv ?? process.env.PATH ?? '').split(path.delimiter).filter(Boolean)
  const versionDirs = (options.versionDirs ?? VERSION_DIRS).map((d) => d.replaceAll('{major}', String(major)))
  return [...new Set([...pathDirs, ...versionDirs].map((dir) => path.join(dir, name)))]
}

async function probe(file: string): Promise<{ version: string; major: number } | null> {
  try {
    await fs.access(file, fs.constants.X_OK)
    const { stdout } = await run(file, ['--version'], { timeout: 10_000, env: toolEnv() })
    return parseToolVersion(stdout)
  } catch {
    return null
  }
}

/**
 * Finds `name` on PATH or next to the server's major version. A tool older than the server cannot
 * dump it (pg_dump refuses, or worse, misses newer features), so the first one at least as new wins;
 * if there are only older ones, the error names both versions.
 */
export async function locateTool(
  name: ToolName,
  server: ServerVersion,
  options: LocateOptions = {},
): Promise<Tool> {
  const places = candidates(name, server.major, options)
  const tooOld: string[] = []
  for (const file of places) {
    const found = await probe(file)
    if (!found) continue
    if (found.major >= server.major) return { name, path: file, ...found }
    tooOld.push(`${name} ${found.version} (${file})`)
  }
  if (tooOld.length > 0) {
    throw new BackupError(
      'version_mismatch',
      `${tooOld.join(', ')} is older than the server (PostgreSQL ${server.text}); install the PostgreSQL ` +
        `${server.major} client tools or set BACKUP_PG_BIN_DIR to a directory with ${name} ${server.major} or newer`,
      false,
    )
  }
  throw new BackupError(
    `${name}_missing`,
    `${name} not found (looked in ${places.map((p) => path.dirname(p)).join(', ')}); install the PostgreSQL ` +
      `${server.major} client tools or set BACKUP_PG_BIN_DIR`,
    false,
  )
}
