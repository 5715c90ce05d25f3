import postgres, { type Sql } from 'postgres'
import type { Config } from '../../../config.js'
import { readIdentityFile } from '../encryption.js'
import { FileElsewhere } from '../files.js'
import { loadIdentities } from '../keys.js'
import { connectionEnv, parseDatabaseUrl } from '../tools.js'
import {
  applyGlobals,
  expectedContents,
  locateRestoreTools,
  type RestoreTools,
  restoreWithClient,
} from './client.js'
import {
  CommandError,
  INTERRUPTED,
  type RestoreFile,
  type RestoreOptions,
  type RestoreReport,
} from './command-line.js'
import { compareContents, countTables } from './contents.js'
import { hashFile, withPlaintext } from './fetch.js'
import { openSource, type RestoreSource } from './sources.js'

export interface RestoreDeps {
  /**
   * A connection to the server the new database is created on: with a backup id, Steward's own
   * database (the backups table); otherwise any database there.
   */
  sql: Sql
  databaseUrl: string
  config: Config
  signal: AbortSignal
  /** Progress lines (stderr). */
  say: (line: string) => void
}

/** A stored file of the set, proved intact and decrypted, as a local path for the tools. */
type Opened = { plain: string; source: 'local' | 'remote' }

/** The set's globals.sql, decrypted. */
type RolesFile = { file: string; backup: RestoreFile }

export async function restoreBackup(deps: RestoreDeps, options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now()
  const source = await openSource(deps, options, options.globals)
  try {
    const { main, globals } = source
    const identities = await identitiesFor([main, globals], options.identityFile, deps.config)
    const tools = await locateRestoreTools(deps.sql, deps.config, main.format)
    await refuseExisting(deps.sql, options.database)
    const label = main.id === null ? main.object : `backup ${main.id}: ${main.file}`
    deps.say(`${label} (${main.format}, ${main.bytes} bytes)`)
    return await openFile(deps, source, main, identities, (opened) =>
      openOptional(deps, source, globals, identities, async (roles) => {
        const rolesFile = roles && globals ? { file: roles.plain, backup: globals } : null
        const restored = await restoreOpened(deps, options.database, main, tools, opened, rolesFile)
        return { ...restored, seconds: (Date.now() - started) / 1000 }
      }),
    )
  } finally {
    await source.close()
  }
}

/** From proved, decrypted files: reads the dump, creates the database, loads it, counts what it holds. */
async function restoreOpened(
  deps: RestoreDeps,
  name: string,
  backup: RestoreFile,
  tools: RestoreTools,
  main: Opened,
  roles: RolesFile | null,
): Promise<Omit<RestoreReport, 'seconds'>> {
  const expected = await expectedContents(backup.format, main.plain, tools, deps.signal).catch(
    (err: Error) => {
      throw new CommandError(`could not read the dump ${backup.file}: ${err.message}`)
    },
  )
  const target = { name, env: targetEnv(deps, name) }
  await createDatabase(deps.sql, name)
  deps.say(`created database ${name}`)
  const globals = await loadInto(deps, backup, tools, target, main.plain, roles)
  const restored = await countIn(deps.databaseUrl, name)
  const comparison = compareContents(expected, restored)
  return { backup, target: name, source: main.source, decrypted: backup.encrypted, globals, comparison }
}

/** --identity, else BACKUP_AGE_IDENTITY_FILE; only read when a file is encrypted. */
async function identitiesFor(
  files: Array<RestoreFile | null>,
  identityFile: string | undefined,
  config: Config,
): Promise<string[]> {
  if (!files.some((f) => f?.encrypted)) return []
  const identities = identityFile
    ? await readIdentityFile(identityFile).catch((err: Error) => {
        throw new CommandError(`--identity: ${err.message}`, 2)
      })
    : await loadIdentities(config).catch((err: Error) => {
        throw new CommandError(err.message, 2)
      })
  if (!identities)
    throw new CommandError(
      'the backup is age-encrypted: give the private key with --identity <key file> (or set BACKUP_AGE_IDENTITY_FILE)',
      2,
    )
  return identities
}

async function refuseExisting(sql: Sql, name: string): Promise<void> {
  const [row] = await sql`select 1 from pg_database where datname = ${name}`
  if (row) throw exists(name)
}

const exists = (name: string) =>
  new CommandError(`database "${name}" already exists: choose a new name (it was not touched)`)

/**
 * The name as a quoted identifier. Not sql(name): the command's connection renames identifiers
 * camelCase → snake_case (COLUMN_CASE), which would create "_shop_restored" for ShopRestored. The
 * name was checked (command-line.ts): no quote can be in it, but it is doubled all the same.
 */
const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`

async function createDatabase(sql: Sql, name: string): Promise<void> {
  try {
    // template0: a restore must start from an empty database, whatever was added to template1.
    await sql.unsafe(`create database ${quoted(name)} template template0`)
  } catch (err) {
    if ((err as { code?: string }).code === '42P04') throw exists(name) // created meanwhile
    throw new CommandError(`cannot create database "${name}": ${(err as Error).message}`)
  }
}

function targetEnv(deps: RestoreDeps, database: string): NodeJS.ProcessEnv {
  return { ...connectionEnv(parseDatabaseUrl(deps.databaseUrl), database), PGAPPNAME: 'steward-restore' }
}

/** Runs `work` on the plaintext of a stored file, after checking its size and sha256. */
async function openFile<T>(
  deps: RestoreDeps,
  source: RestoreSource,
  file: RestoreFile,
  identities: string[],
  work: (opened: Opened) => Promise<T>,
): Promise<T> {
  const scratch = { backupDir: source.scratchDir, signal: deps.signal }
  try {
    return await source.withStored(file, async (stored, copy) => {
      await checkIntegrity(file, stored, copy, deps.signal)
      return await withPlaintext(stored, file.encrypted, identities, scratch, (plain) =>
        work({ plain, source: copy }),
      )
    })
  } catch (err) {
    throw explainFetch(err, file)
  }
}

/** openFile, or `work(null)` when there is no file to open. */
async function openOptional<T>(
  deps: RestoreDeps,
  source: RestoreSource,
  file: RestoreFile | null,
  identities: string[],
  work: (opened: Opened | null) => Promise<T>,
): Promise<T> {
  return file ? await openFile(deps, source, file, identities, work) : await work(null)
}

async function checkIntegrity(backup: RestoreFile, file: string, source: string, signal: AbortSignal) {
  const { sha256, bytes } = await hashFile(file, signal)
  const said = backup.id === null ? "the object's metadata says" : 'recorded'
  if (sha256 !== backup.sha256 || bytes !== backup.bytes)
    throw new CommandError(
      `the ${source} copy of ${backup.file} is damaged: ${bytes} bytes, sha256 ${sha256}; ` +
        `${said} ${backup.bytes} bytes, sha256 ${backup.sha256}. Nothing was restored`,
    )
}

function explainFetch(err: unknown, backup: RestoreFile): unknown {
  if (err instanceof CommandError) return err
  if (err instanceof FileElsewhere) return new CommandError(`cannot read ${backup.file}: ${err.message}`)
  const message = (err as Error).message ?? String(err)
  if (/age decryption failed/.test(message))
    return new CommandError(`cannot decrypt ${backup.file} with the given identity: ${message}`)
  if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as Error).name === 'NotFound')
    return new CommandError(`cannot read ${backup.file}: ${message}`)
  if ((err as Error).name === 'RemoteError')
    return new CommandError(`cannot download the off-site copy of ${backup.file}: ${message}`)
  return err
}

/**
 * Globals first, then the dump. Any failure drops the new database (ours, and incomplete) before
 * the error goes on; a failure to drop it is said too.
 */
async function loadInto(
  deps: RestoreDeps,
  backup: RestoreFile,
  tools: RestoreTools,
  target: { name: string; env: NodeJS.ProcessEnv },
  file: string,
  roles: RolesFile | null,
): Promise<RestoreReport['globals']> {
  try {
    let applied: RestoreReport['globals'] = null
    if (roles) {
      const role = await connectingRole(deps.sql)
      const result = await applyGlobals(roles.file, tools.psql, target.env, role, deps.signal)
      applied = { id: roles.backup.id, file: roles.backup.file, ...result }
      deps.say(`applied globals (${roles.backup.file}): ${result.errors.length} statement(s) failed`)
    }
    deps.say(`restoring with ${backup.format === 'custom' ? 'pg_restore' : 'psql'}…`)
    await restoreWithClient(backup.format, file, tools, target.env, deps.signal)
    return applied
  } catch (err) {
    const dropped = await deps.sql.unsafe(`drop database if exists ${quoted(target.name)} with (force)`).then(
      () => `the incomplete database "${target.name}" was dropped`,
      (dropErr: Error) => `could not drop the incomplete database "${target.name}": ${dropErr.message}`,
    )
    throw restoreFailure(err, dropped, deps.signal)
  }
}

async function connectingRole(sql: Sql): Promise<{ name: string; quoted: string }> {
  const [row] = await sql<{ name: string; quoted: string }[]>`
    select current_user as name, quote_ident(current_user) as quoted`
  return row as { name: string; quoted: string }
}

function restoreFailure(err: unknown, dropped: string, signal: AbortSignal): CommandError {
  if (signal.aborted) return new CommandError(`interrupted: ${dropped}`, INTERRUPTED)
  const message = err instanceof Error ? err.message : String(err)
  const hint = /role "[^"]*" does not exist/.test(message)
    ? '\nThe dump names roles this server does not have: restore with --globals to create them first.'
    : ''
  return new CommandError(`restore failed: ${message}\n${dropped}${hint}`)
}

async function countIn(databaseUrl: string, database: string) {
  const target = postgres(databaseUrl, { database, max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    return await countTables(target)
  } finally {
    await target.end({ timeout: 5 })
  }
}
