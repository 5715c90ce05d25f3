// The client-tool half of `steward backup restore` and of the restore check: what a dump declares
// (its tables and row counts), loading it into a database with psql or pg_restore (or, for the
// check, its SQL script through a filter into psql), and applying a set's globals.sql.
//
// Rules it keeps:
// - the same invocations as the restore check (verify.ts): -X, --no-password, ON_ERROR_STOP, one
//   transaction, so a failed restore leaves nothing half-loaded; connection details travel only in
//   the environment (connectionEnv), never in argv;
// - owners and privileges are restored as the dump has them (unlike the restore check, which leaves
//   them out, restoring as a role without rights: see script-filter.ts): a restore that silently
//   hands every object to the restoring role is not the database that was backed up. Roles missing
//   on this server make the restore fail; --globals creates them first;
// - globals.sql runs without ON_ERROR_STOP (CREATE ROLE fails for every role that exists already,
//   which is expected) and every error it prints is counted and returned, not hidden;
// - the role the command connects as is left as it is: its ALTER ROLE … WITH line (attributes and
//   password of the old server) is skipped, or a restore onto a new server would change the password
//   it is logged in with and lock itself out halfway.
import { createReadStream } from 'node:fs'
import fs from 'node:fs/promises'
import type { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { Sql } from 'postgres'
import type { Config } from '../../../config.js'
import type { BackupFormat } from '../files.js'
import { runTool, startTool, toolFailure } from '../process.js'
import { BackupError, locateTool, serverVersion, type Tool, toolEnv } from '../tools.js'
import { readDumpContents, type TableCounts } from './contents.js'
import { canRestrict, restricted, scriptFilter } from './script-filter.js'

export interface RestoreTools {
  psql: Tool
  /** Only for custom archives. */
  pgRestore: Tool | null
}

/**
 * psql, and pg_restore when the dump is a custom archive, at least as new as the server. psql must
 * have a restricted mode (\\restrict): every script it is fed (plain dumps, globals.sql) runs in it, so
 * a tampered file cannot run commands on this host (\\!, \\copy … program).
 */
export async function locateRestoreTools(sql: Sql, config: Config, format: BackupFormat) {
  const server = await serverVersion(sql)
  const options = { binDir: config.backupPgBinDir }
  const psql = await locateTool('psql', server, options)
  if (!canRestrict(psql))
    throw new BackupError(
      'psql_unsafe',
      `psql ${psql.version} (${psql.path}) has no restricted mode (\\restrict), so a dump could run ` +
        'commands on this host through it; install a current minor release of the client tools',
    )
  return { psql, pgRestore: format === 'custom' ? await locateTool('pg_restore', server, options) : null }
}

/** The tables and row counts the dump declares: from the script, or pg_restore's script of an archive. */
export async function expectedContents(
  format: BackupFormat,
  file: string,
  tools: RestoreTools,
  signal: AbortSignal,
): Promise<TableCounts> {
  if (format !== 'custom' || !tools.pgRestore) {
    const script = createReadStream(file)
    return await readDumpContents(format === 'gzip' ? script.pipe(createGunzip()) : script)
  }
  // Without --dbname pg_restore connects nowhere: it writes the archive out as a SQL script.
  const proc = startTool(tools.pgRestore, ['--file=-', file], { env: toolEnv(), signal })
  const [contents, exit] = await Promise.all([readDumpContents(proc.stdout), proc.exited])
  signal.throwIfAborted()
  const failure = toolFailure(tools.pgRestore, exit)
  if (failure) throw new BackupError('unreadable', failure.message)
  return contents
}

const PSQL_ARGS = ['-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1', '--single-transaction']

/** Loads the dump into env.PGDATABASE in one transaction, owners and grants too; rejects with stderr. */
export async function restoreWithClient(
  format: BackupFormat,
  file: string,
  tools: RestoreTools,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<void> {
  if (format === 'custom' && tools.pgRestore) {
    const args = ['--no-password', '--exit-on-error', '--single-transaction', `--dbname=${env.PGDATABASE}`]
    await runTool(tools.pgRestore, [...args, file], { env, signal })
    return
  }
  // A script: psql in restricted mode, owners and grants kept.
  await restoreScript(format, file, tools, env, signal, scriptFilter(null, { keepPrivileges: true }))
}

/** The dump's SQL script: the file itself, or pg_restore's script of the archive (no owners, no grants). */
function scriptOf(format: BackupFormat, file: string, tools: RestoreTools, signal: AbortSignal) {
  if (format !== 'custom' || !tools.pgRestore)
    return { stream: createReadStream(file) as Readable, tool: null }
  const args = ['--file=-', '--no-owner', '--no-privileges', file]
  const proc = startTool(tools.pgRestore, args, { env: toolEnv(), signal })
  return { stream: proc.stdout, tool: tools.pgRestore, exited: proc.exited }
}

/**
 * Loads the dump's SQL script into env.PGDATABASE with psql in one transaction, every line through
 * `filter` on its way (the restore check's: see script-filter.ts); rejects with psql's stderr.
 */
export async function restoreScript(
  format: BackupFormat,
  file: string,
  tools: RestoreTools,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
  filter: Transform,
): Promise<void> {
  const psql = startTool(tools.psql, [...PSQL_ARGS, '--file=-'], { env, signal, stdin: 'pipe' })
  psql.stdout.resume()
  const script = scriptOf(format, file, tools, signal)
  const stdin = psql.stdin as NodeJS.WritableStream
  const feeding =
    format === 'gzip'
      ? pipeline(script.stream, createGunzip(), filter, stdin)
      : pipeline(script.stream, filter, stdin)
  const fed = feeding.then(
    () => null,
    (err: unknown) => err,
  )
  const [exit, fedError, scriptExit] = await Promise.all([psql.exited, fed, script.exited])
  signal.throwIfAborted()
  const failure = toolFailure(tools.psql, exit)
  if (failure) throw failure
  const unreadable = script.tool && scriptExit ? toolFailure(script.tool, scriptExit) : null
  if (unreadable) throw new BackupError('unreadable', unreadable.message)
  if (fedError instanceof BackupError) throw fedError
  if (fedError) throw new BackupError('unreadable', `could not read the dump: ${(fedError as Error).message}`)
}

export interface GlobalsResult {
  /** Each statement that failed, as psql reported it ("role "x" already exists"). */
  errors: string[]
  /** The connecting role whose own ALTER ROLE line was skipped, if the file had one. */
  keptRole: string | null
}

/** globals.sql without the connecting role's `ALTER ROLE <role> WITH …` line. */
export function withoutOwnRole(script: string, quotedRole: string): { script: string; skipped: boolean } {
  const prefix = `ALTER ROLE ${quotedRole} WITH `
  const lines = script.split('\n')
  const kept = lines.filter((line) => !line.startsWith(prefix))
  return { script: kept.join('\n'), skipped: kept.length < lines.length }
}

/** psql's "psql:<file>:<line>: ERROR:  <message>" lines, as messages. */
export function psqlErrors(stderr: string): string[] {
  return [...stderr.matchAll(/^(?:psql:[^\n]*?:\d+: )?ERROR: {1,2}(.*)$/gm)].map((m) => m[1] as string)
}

/** Runs globals.sql statement by statement (no ON_ERROR_STOP, no transaction); counts what failed. */
export async function applyGlobals(
  file: string,
  psql: Tool,
  env: NodeJS.ProcessEnv,
  role: { name: string; quoted: string },
  signal: AbortSignal,
): Promise<GlobalsResult> {
  const { script, skipped } = withoutOwnRole(await fs.readFile(file, 'utf8'), role.quoted)
  const proc = startTool(psql, ['-X', '-q', '--no-password', '--file=-'], { env, signal, stdin: 'pipe' })
  // process.ts keeps only the end of stderr; every error line is wanted here, so read it as it comes.
  let stderr = ''
  proc.child.stderr?.on('data', (chunk: string) => {
    stderr += chunk
  })
  proc.stdout.resume()
  proc.stdin?.on('error', () => {}) // psql gone early: its exit status says why
  proc.stdin?.end(restricted(script))
  const exit = await proc.exited
  signal.throwIfAborted()
  const failure = toolFailure(psql, exit)
  if (failure) throw failure
  return { errors: psqlErrors(stderr), keptRole: skipped ? role.name : null }
}
