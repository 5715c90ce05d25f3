// The client-tool half of `steward backup restore`: what a dump declares (its tables and row counts),
// loading it into a database with psql or pg_restore, and applying a set's globals.sql.
//
// Rules it keeps:
// - the same invocations as the restore check (verify.ts): -X, --no-password, ON_ERROR_STOP, one
//   transaction, so a failed restore leaves nothing half-loaded; connection details travel only in
//   the environment (connectionEnv), never in argv;
// - owners and privileges are restored as the dump has them (unlike the restore check, which restores
//   into a scratch database with --no-owner/--no-privileges): a plain script cannot be told to skip
//   them anyway, and a restore that silently hands every object to the restoring role is not the
//   database that was backed up. Roles missing on this server make the restore fail; --globals
//   creates them first;
// - globals.sql runs without ON_ERROR_STOP (CREATE ROLE fails for every role that exists already,
//   which is expected) and every error it prints is counted and returned, not hidden;
// - the role the command connects as is left as it is: its ALTER ROLE … WITH line (attributes and
//   password of the old server) is skipped, or a restore onto a new server would change the password
//   it is logged in with and lock itself out halfway.
import { createReadStream } from 'node:fs'
import fs from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { Sql } from 'postgres'
import type { Config } from '../../../config.js'
import type { BackupFormat } from '../files.js'
import { runTool, startTool, toolFailure } from '../process.js'
import { BackupError, locateTool, serverVersion, type Tool } from '../tools.js'
import { readDumpContents, type TableCounts } from './contents.js'

export interface RestoreTools {
  psql: Tool
  /** Only for custom archives. */
  pgRestore: Tool | null
}

/** psql, and pg_restore when the dump is a custom archive, at least as new as the server. */
export async function locateRestoreTools(sql: Sql, config: Config, format: BackupFormat) {
  const server = await serverVersion(sql)
  const options = { binDir: config.backupPgBinDir }
  return {
    psql: await locateTool('psql', server, options),
    pgRestore: format === 'custom' ? await locateTool('pg_restore', server, options) : null,
  }
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
  const proc = startTool(tools.pgRestore, ['--file=-', file], { env: {}, signal })
  const [contents, exit] = await Promise.all([readDumpContents(proc.stdout), proc.exited])
  signal.throwIfAborted()
  const failure = toolFailure(tools.pgRestore, exit)
  if (failure) throw new BackupError('unreadable', failure.message)
  return contents
}

const PSQL_ARGS = ['-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1', '--single-transaction']

/**
 * Loads the dump into env.PGDATABASE in one transaction; rejects with the tool's stderr. `ownership`
 * 'skip' (custom archives only) restores without owners and grants, as a scratch restore may.
 */
export async function restoreWithClient(
  format: BackupFormat,
  file: string,
  tools: RestoreTools,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
  ownership: 'keep' | 'skip' = 'keep',
): Promise<void> {
  if (format === 'custom' && tools.pgRestore) {
    const args = ['--no-password', '--exit-on-error', '--single-transaction', `--dbname=${env.PGDATABASE}`]
    if (ownership === 'skip') args.push('--no-owner', '--no-privileges')
    await runTool(tools.pgRestore, [...args, file], { env, signal })
    return
  }
  if (format === 'plain') {
    await runTool(tools.psql, [...PSQL_ARGS, `--file=${file}`], { env, signal })
    return
  }
  const proc = startTool(tools.psql, [...PSQL_ARGS, '--file=-'], { env, signal, stdin: 'pipe' })
  proc.stdout.resume()
  const feed = pipeline(createReadStream(file), createGunzip(), proc.stdin as NodeJS.WritableStream).catch(
    (err: unknown) => err,
  )
  const [exit, fed] = await Promise.all([proc.exited, feed])
  signal.throwIfAborted()
  const failure = toolFailure(tools.psql, exit)
  if (failure) throw failure
  if (fed instanceof Error)
    throw new BackupError('unreadable', `could not decompress the dump: ${fed.message}`)
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
  proc.stdin?.end(script)
  const exit = await proc.exited
  signal.throwIfAborted()
  const failure = toolFailure(psql, exit)
  if (failure) throw failure
  return { errors: psqlErrors(stderr), keptRole: skipped ? role.name : null }
}
