// The `steward` command (package.json bin, through bin/steward.js; `npm run steward -- …` too):
// operator tasks run from a shell against Steward's database, which is DATABASE_URL, or the embedded
// database of DATA_DIR whether or not the server is running. Configuration comes from the same
// environment as the server's (config.ts). Disaster recovery works without that database: `backup
// sets --remote` reads only the bucket, and `backup restore <s3 URL>` only needs the server to
// restore onto, so Steward's own database can be one of the things restored.
//
// Rules it keeps:
// - one entry in COMMANDS per command: its words, a one-line summary, its usage and run(argv)
//   (token, migrate, psql, db-url, backup sets, backup restore), so `--help` lists every one;
// - a command that reads the backups table refuses a database without one (and migrates one that
//   has it, as the server would); one that only needs the server creates no table anywhere;
// - exit status: 0 done; 1 failed or refused; 2 usage or configuration error; 130 interrupted
//   (psql: psql's own status);
//   An error that carries an exitCode (CommandError) is a refusal: its message is printed alone;
//   anything else is a bug or an outage and is printed with its stack;
// - SIGINT/SIGTERM/SIGHUP abort the running command through its signal, so client tools are stopped and
//   temporary files removed; a second signal exits at once;
// - an embedded server started for the command is stopped after it; one a running Steward owns is
//   left alone (useEmbeddedPostgres).
import os from 'node:os'
import postgres, { type Sql } from 'postgres'
import { type Config, ConfigError, loadConfig } from './config.js'
import { COLUMN_CASE, type EmbeddedDatabase, runningEmbeddedUrl, useEmbeddedPostgres } from './db/embedded.js'
import { migrate } from './db/migrate.js'
import { DB_URL_USAGE, MIGRATE_USAGE, migrateCommand, PSQL_USAGE, psqlCommand } from './db-commands.js'
import {
  CommandError,
  formatReport,
  INTERRUPTED,
  parseRestoreArgs,
  RESTORE_USAGE,
} from './features/backups/restore/command-line.js'
import { restoreBackup } from './features/backups/restore/restore-command.js'
import {
  formatSets,
  parseSetsArgs,
  SETS_USAGE,
  setsInBucket,
  setsInTable,
} from './features/backups/restore/sets-command.js'
import { parseTokenArgs, runTokenCommand, TOKEN_USAGE, type TokenCommand } from './http/auth/token-command.js'
import { isDatabaseDown } from './lib/errors.js'

interface Command {
  words: string[]
  /** The command line, after "steward". */
  synopsis: string
  summary: string
  /** Printed for --help / -h anywhere after the command's words. */
  usage: string
  /** Gets the arguments after the command's words; resolves to the exit status. */
  run(argv: string[], signal: AbortSignal): Promise<number>
}

const COMMANDS: Command[] = [
  {
    words: ['token'],
    synopsis: 'token create --name <name> --role <role> | token list | token revoke <name>',
    summary: 'API tokens: create one (printed once), list them, revoke one',
    usage: TOKEN_USAGE,
    run: token,
  },
  {
    words: ['migrate'],
    synopsis: 'migrate',
    summary: "apply Steward's pending migrations (the server also does at start-up)",
    usage: MIGRATE_USAGE,
    run: (argv) => withDatabase(loadConfigOrFail(argv), 'migrated', (db) => migrateCommand(db.sql, out)),
  },
  {
    words: ['psql'],
    synopsis: 'psql [psql options…]',
    summary: "psql on Steward's database (the embedded one included)",
    usage: PSQL_USAGE,
    run: psql,
  },
  {
    words: ['db-url'],
    synopsis: 'db-url',
    summary: "print the connection URL of Steward's database, for other tools",
    usage: DB_URL_USAGE,
    run: dbUrl,
  },
  {
    words: ['backup', 'sets'],
    synopsis: 'backup sets [--remote [s3://bucket/prefix]] [--limit <n>]',
    summary: 'list the backup sets, newest first (--remote: from the bucket, no database needed)',
    usage: SETS_USAGE,
    run: backupSets,
  },
  {
    words: ['backup', 'restore'],
    synopsis: 'backup restore <backup id | s3://…/<file> | --latest <db>> --database <new name> [options]',
    summary: 'restore a backup file into a new database and compare it with the dump',
    usage: RESTORE_USAGE,
    run: backupRestore,
  },
]

const list = (commands: Command[]) =>
  commands.map((c) => `  steward ${c.synopsis}\n      ${c.summary}`).join('\n')

const USAGE = `usage: steward <command> [options]

Operator commands on Steward's database: DATABASE_URL, or the embedded database of DATA_DIR (with
the server running or not). They read the same environment as the server. For disaster recovery,
"backup sets --remote" and "backup restore <s3 URL>" need only the bucket and a server to restore
onto, not Steward's database.

commands:
${list(COMMANDS)}

Run "steward <command> --help" for a command's options.`

const out = (text: string) => process.stdout.write(`${text}\n`)
const err = (text: string) => process.stderr.write(`${text}\n`)

function loadConfigOrFail(argv: string[] = []): Config {
  if (argv.length > 0) throw new CommandError(`unexpected argument "${argv[0]}"`, 2)
  try {
    return loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) throw new CommandError(error.message, 2)
    throw error
  }
}

interface Database {
  sql: Sql
  url: string
  config: Config
}

/**
 * A database for the duration of `work`: Steward's own ('steward': it must have the backups table;
 * 'migrated': any database, given Steward's tables as the server would, for tokens and migrate),
 * or any database of the server ('server': DATABASE_URL's, or the server's "postgres" database when
 * that one does not exist yet, as Steward's own before it is restored onto a new server).
 */
async function withDatabase<T>(
  config: Config,
  needs: 'steward' | 'migrated' | 'server',
  work: (db: Database) => Promise<T>,
): Promise<T> {
  let embedded: EmbeddedDatabase | undefined
  // A restore of Steward's own database must not find it created empty by the start of the server.
  if (!config.databaseUrl)
    embedded = await useEmbeddedPostgres(config.dataDir, needs === 'server' ? 'postgres' : 'steward')
  try {
    const configured = config.databaseUrl ?? (embedded as EmbeddedDatabase).url
    const { sql, url } = needs === 'server' ? await connectToServer(configured) : connect(configured)
    try {
      if (needs === 'steward') await requireStewardTables(sql)
      if (needs === 'migrated') await migrate(sql)
      return await work({ sql, url, config: { ...config, databaseUrl: url } })
    } finally {
      await sql.end({ timeout: 5 })
    }
  } finally {
    await embedded?.stop()
  }
}

const connect = (url: string) => ({
  sql: postgres(url, { max: 2, onnotice: () => {}, transform: COLUMN_CASE }),
  url,
})

async function connectToServer(url: string): Promise<{ sql: Sql; url: string }> {
  const first = connect(url)
  try {
    await first.sql`select 1`
    return first
  } catch (error) {
    await first.sql.end({ timeout: 5 })
    if ((error as { code?: string }).code !== '3D000') throw error // not "database does not exist"
    // The path only: a URL of several hosts (h1:5432,h2:5432) is no WHATWG URL.
    const maintenance = url.replace(/^([a-z]+:\/\/[^/?]*)(\/[^?]*)?/i, '$1/postgres')
    err(`steward: ${(error as Error).message}: using the server's "postgres" database instead`)
    return connect(maintenance)
  }
}

/**
 * Steward's tables, migrated as the server would; refused when the database has none (a URL that
 * points at some other database must not get Steward's tables created in it).
 */
async function requireStewardTables(sql: Sql): Promise<void> {
  const [row] = await sql<{ found: boolean; database: string }[]>`
    select to_regclass('backups') is not null as found, current_database() as database`
  if (!row?.found)
    throw new CommandError(
      `database "${row?.database}" has no backups table: DATABASE_URL (or DATA_DIR) must lead to ` +
        "Steward's own database (or give the backup's s3:// URL, or use --remote, which need none)",
      2,
    )
  await migrate(sql)
}

/** Who a command acts as in the audit log: the OS user running it. */
function cliActor(): string {
  try {
    return `cli:${os.userInfo().username}`
  } catch {
    return `cli:${process.env.USER ?? `uid ${process.getuid?.() ?? '?'}`}`
  }
}

async function token(argv: string[]): Promise<number> {
  let command: TokenCommand
  try {
    command = parseTokenArgs(argv)
  } catch (error) {
    throw new CommandError((error as Error).message, 2)
  }
  const config = loadConfigOrFail()
  const options = { actor: cliActor(), envAdminToken: config.adminToken }
  await withDatabase(config, 'migrated', (db) => runTokenCommand(db.sql, command, options, { out, say: err }))
  return 0
}

async function psql(argv: string[], signal: AbortSignal): Promise<number> {
  const config = loadConfigOrFail()
  return await withDatabase(config, 'steward', (db) =>
    psqlCommand(db.sql, db.url, argv, { binDir: config.backupPgBinDir, signal }),
  )
}

async function dbUrl(argv: string[]): Promise<number> {
  const config = loadConfigOrFail(argv)
  if (config.databaseUrl) {
    out(config.databaseUrl)
    return 0
  }
  const running = await runningEmbeddedUrl(config.dataDir)
  if (!running)
    throw new CommandError(
      `the embedded database of ${config.dataDir} is not running (its port changes at every start): start Steward (npm start), or use "steward psql", which starts it for the session`,
    )
  out(running)
  return 0
}

async function backupRestore(argv: string[], signal: AbortSignal): Promise<number> {
  const options = parseRestoreArgs(argv)
  const config = loadConfigOrFail()
  const needs = 'id' in options ? 'steward' : 'server'
  const restored = await withDatabase(config, needs, (db) =>
    restoreBackup({ sql: db.sql, databaseUrl: db.url, config: db.config, signal, say: err }, options),
  )
  out(formatReport(restored))
  return restored.comparison.ok ? 0 : 1
}

async function backupSets(argv: string[]): Promise<number> {
  const options = parseSetsArgs(argv)
  const config = loadConfigOrFail()
  const listing = options.remote
    ? await setsInBucket(config, options.url, options.limit)
    : await withDatabase(config, 'steward', (db) => setsInTable(db.sql, options.limit))
  out(formatSets(listing))
  return 0
}

/** Commands whose words start with `words` (for `steward backup --help`). */
const under = (words: string[]) => COMMANDS.filter((c) => words.every((w, i) => c.words[i] === w))

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  const command = COMMANDS.find((c) => c.words.every((w, i) => argv[i] === w))
  if (command) {
    const rest = argv.slice(command.words.length)
    if (rest.includes('--help') || rest.includes('-h')) {
      out(command.usage)
      return 0
    }
    return await command.run(rest, signal)
  }
  const words = argv.filter((a) => !a.startsWith('-'))
  const help = argv.includes('--help') || argv.includes('-h') || words[0] === 'help'
  const related = words.length > 0 && words[0] !== 'help' ? under(words) : []
  if (related.length > 0) {
    const text = `commands:\n${list(related)}\n\nRun "steward <command> --help" for a command's options.`
    help ? out(text) : err(text)
    return help ? 0 : 2
  }
  if (help || argv.length === 0) {
    help ? out(USAGE) : err(USAGE)
    return help ? 0 : 2
  }
  err(`steward: unknown command "${argv.join(' ')}"\n\n${USAGE}`)
  return 2
}

function report(error: unknown): number {
  const exitCode = (error as { exitCode?: unknown } | null)?.exitCode
  if (typeof exitCode === 'number') {
    err(`steward: ${(error as Error).message}`)
    return exitCode
  }
  // A domain refusal (a token name taken, none to revoke): its message says it all.
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode
  if (typeof statusCode === 'number' && statusCode < 500) {
    err(`steward: ${(error as Error).message}`)
    return 1
  }
  if (isDatabaseDown(error)) {
    err(`steward: cannot reach the database: ${(error as Error).message}`)
    return 1
  }
  err(`steward: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  return 1
}

/** Writes pending output, then exits with `code`. */
async function exit(code: number): Promise<never> {
  await new Promise((resolve) => process.stdout.write('', resolve))
  await new Promise((resolve) => process.stderr.write('', resolve))
  process.exit(code)
}

const controller = new AbortController()
const onSignal = (name: NodeJS.Signals) => {
  if (controller.signal.aborted) process.exit(INTERRUPTED)
  err(`steward: ${name}: stopping (again to quit at once)`)
  controller.abort(new Error(`interrupted by ${name}`))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)
process.on('SIGHUP', onSignal)
let status: number
try {
  status = await main(process.argv.slice(2), controller.signal)
} catch (error) {
  const code = report(error)
  status = controller.signal.aborted ? INTERRUPTED : code
}
// An explicit exit once the command is over: a handle some library left open (an idle keep-alive
// socket of the S3 client, a timer) must not keep a finished command waiting.
await exit(status)
