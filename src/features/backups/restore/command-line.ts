// The command-line side of `steward backup restore`: its usage text, its arguments, the error that
// carries an exit status, and the summary it prints. restore-command.ts does the work.
//
// Rules it keeps:
// - what to restore is a backup id (the backups table), an off-site object (s3://bucket/…/<file>, or
//   a key relative to BACKUP_REMOTE_URL), or --latest <database>; the last two need no table, for
//   a new machine that has only the bucket and the key;
// - exit status: 0 restored and matching; 1 not restored, or restored with differences; 2 the command
//   line or the configuration must change; 130 interrupted;
// - the target name is checked here, strictly (letters, digits, `_ . $ -`, at most 63 bytes): longer
//   names are silently truncated by PostgreSQL, and a name with `=` would be read by pg_restore's
//   --dbname as a connection string.
import { parseArgs } from 'node:util'
import type { BackupFormat } from '../files.js'
import type { GlobalsResult } from './client.js'
import type { Comparison } from './contents.js'

const SYNOPSIS = `usage: steward backup restore <backup id | s3://bucket/…/<file> | <key>> --database <new name>
                              [--identity <key file>] [--globals]
       steward backup restore --latest <database> --database <new name> [--identity …] [--globals]`

export const RESTORE_USAGE = `${SYNOPSIS}

Restores one database file of a backup set into a new database on the server of DATABASE_URL (or
the embedded database of DATA_DIR, whether or not the server is running), then compares its tables
and row counts with the dump. Its size and sha256 are checked before it is used.

  <backup id>            a backup with scope "database" (GET /backups, steward backup sets): read
                         from BACKUP_DIR, else from its off-site copy; needs Steward's database
  s3://bucket/…/<file>   an off-site object, e.g. s3://bucket/prefix/daily/backup_20261128_010000/
                         shop.sql.age; no backups table needed (a new machine with only the bucket):
                         format from the name, encrypted when it ends in .age, size and sha256 from
                         the object's metadata. Credentials and endpoint: the AWS_* variables;
                         BACKUP_REMOTE_FORCE_PATH_STYLE applies
  <key>                  the same, relative to BACKUP_REMOTE_URL: daily/backup_20261128_010000/shop.sql
      --latest <db>      the newest file of that database in BACKUP_REMOTE_URL, of any kind
  -d, --database <name>  the database to create: letters, digits, "_", "-", ".", "$"; must not exist
  -i, --identity <file>  age identity file for an encrypted set (default: BACKUP_AGE_IDENTITY_FILE)
      --globals          first apply the set's globals.sql (roles), so owners and grants restore
                         on a new server; statements that fail ("role … already exists") are counted
  -h, --help             this text

Without a backup id, DATABASE_URL may be any database on the server (none of Steward's tables are
needed or created; one that does not exist yet, such as Steward's own before it is restored, is
replaced by "postgres"). Downloads go to BACKUP_DIR/.restore-tmp when BACKUP_DIR exists, else to
the system's temporary directory, and are removed afterwards. "steward backup sets --remote" lists
the sets in the bucket.

Owners and privileges are restored as dumped: without --globals the roles must exist already.
Exit status: 0 restored and matching; 1 not restored, or restored with differences; 2 usage or
configuration error.`

/** A refusal or failure to report without a stack: its message is printed, exitCode is the status. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message)
  }
}

/** The shell's status for a command stopped by SIGINT. */
export const INTERRUPTED = 130

const usage = (message: string) =>
  new CommandError(`${message}\n${SYNOPSIS}\n(steward backup restore --help explains the options)`, 2)

/** What to restore: a backups row, an off-site object (URL or key), or a database's newest file. */
export type RestoreFrom = { id: number } | { object: string } | { latest: string }

export type RestoreOptions = RestoreFrom & {
  database: string
  identityFile?: string
  globals: boolean
}

// Also keeps libpq from reading the name as a connection string (pg_restore --dbname).
const DATABASE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.$-]*$/
const MAX_NAME_BYTES = 63

/** The command line after `backup restore` (--help is the caller's). Throws CommandError (2) on mistakes. */
export function parseRestoreArgs(argv: string[]): RestoreOptions {
  let parsed: ReturnType<typeof parseRestore>
  try {
    parsed = parseRestore(argv)
  } catch (err) {
    throw usage((err as Error).message)
  }
  const { values, positionals } = parsed
  const database = values.database
  if (!database) throw usage('--database <new name> is required')
  if (!DATABASE_NAME.test(database) || Buffer.byteLength(database) > MAX_NAME_BYTES)
    throw usage(`--database "${database}": letters, digits, "_", "-", ".", "$", at most 63 bytes`)
  const rest = { database, identityFile: values.identity, globals: values.globals === true }
  return { ...restoreFrom(positionals, values.latest), ...rest }
}

function restoreFrom(positionals: string[], latest: string | undefined): RestoreFrom {
  if (latest !== undefined) {
    if (positionals.length > 0) throw usage('give a backup id, an object, or --latest: not both')
    if (!latest) throw usage('--latest needs a database name')
    return { latest }
  }
  if (positionals.length !== 1) throw usage('give exactly one backup id, or one off-site object')
  const given = positionals[0] as string
  const id = Number(given)
  if (/^\d+$/.test(given) && Number.isSafeInteger(id) && id > 0) return { id }
  // An object key holds at least <kind>/<set>/<file>; anything else was meant as an id.
  if (given.includes('/')) return { object: given }
  throw usage(
    `"${given}" is not a backup id (a positive integer) nor an off-site object ` +
      '(s3://bucket/…/backup_YYYYMMDD_HHMMSS/<file>, or <kind>/backup_…/<file> under BACKUP_REMOTE_URL)',
  )
}

function parseRestore(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      database: { type: 'string', short: 'd' },
      identity: { type: 'string', short: 'i' },
      globals: { type: 'boolean' },
      latest: { type: 'string' },
    },
  })
}

/** A stored file to restore, found through the backups table or in the bucket alone. */
export interface RestoreFile {
  /** Its backups row; null for an object found in the bucket without the table. */
  id: number | null
  scope: 'database' | 'globals'
  database: string
  kind: string
  /** When its set was made; null when not known. */
  createdAt: string | null
  setDir: string
  /** <kind>/backup_YYYYMMDD_HHMMSS/<name>: its path in BACKUP_DIR and under the off-site prefix. */
  file: string
  format: BackupFormat
  bytes: number
  sha256: string
  encrypted: boolean
  /** s3://bucket/key of its off-site copy, when it has one. */
  object: string | null
}

export interface RestoreReport {
  backup: RestoreFile
  target: string
  source: 'local' | 'remote'
  decrypted: boolean
  globals: (GlobalsResult & { id: number | null; file: string }) | null
  comparison: Comparison
  seconds: number
}

/** The summary printed at the end; the lines that differ from the dump when something does. */
export function formatReport(report: RestoreReport): string {
  const { backup, comparison: c } = report
  const g = report.globals
  const globals = g
    ? `applied (${g.id === null ? g.file : `backup ${g.id}`}; ${g.errors.length} statement(s) failed${
        g.keptRole ? `; role ${g.keptRole}, used to connect, left as it is` : ''
      })`
    : 'not applied'
  const facts = `database ${backup.database}, ${backup.kind}, ${backup.createdAt ?? 'time unknown'}`
  const lines = [
    ['backup', backup.id === null ? `none: an off-site object (${facts})` : `${backup.id} (${facts})`],
    ['set', backup.setDir],
    ['file', `${backup.file} (${backup.format}, ${backup.bytes} bytes, sha256 ok)`],
    ['source', report.source === 'local' ? 'local copy (BACKUP_DIR)' : `off-site copy (${backup.object})`],
    ['decrypted', report.decrypted ? 'yes' : 'no (not encrypted)'],
    ['globals', globals],
    ['database', report.target],
    ['tables', String(c.tables)],
    ['rows', String(c.rows)],
    ['seconds', report.seconds.toFixed(1)],
    [
      'result',
      c.ok
        ? 'ok: tables and row counts match the dump'
        : `MISMATCH: database "${report.target}" kept for inspection`,
    ],
  ].map(([label, value]) => `${(label as string).padEnd(10)} ${value}`)
  return [...lines, ...differences(report.globals, c)].join('\n')
}

function differences(globals: RestoreReport['globals'], c: Comparison): string[] {
  const out = [...new Set(globals?.errors ?? [])].slice(0, 10).map((e) => `  globals: ${e}`)
  for (const t of c.missingTables) out.push(`  missing table: ${t}`)
  for (const t of c.extraTables) out.push(`  table not in the dump: ${t}`)
  for (const m of c.countMismatches)
    out.push(`  ${m.table}: ${m.dump} rows in the dump, ${m.restored} restored`)
  return out
}
