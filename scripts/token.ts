// `npm run token -- create --name ci --role operator` prints a new token (once);
// `npm run token -- list` shows live tokens; `npm run token -- revoke <name>` revokes one.
// Works on DATABASE_URL, or on the embedded database of DATA_DIR (running or not).
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { ConfigError, loadConfig } from '../src/config.js'
import { COLUMN_CASE, useEmbeddedPostgres } from '../src/db/embedded.js'
import { migrate } from '../src/db/migrate.js'
import { createAudit } from '../src/http/auth/audit.js'
import { createTokens, ROLES, type Role } from '../src/http/auth/tokens.js'

const USAGE = `usage:
  npm run token -- create --name <name> --role <viewer|operator|admin>
  npm run token -- list
  npm run token -- revoke <name>`

/** A mistake in the command line or a refused change: printed, exit code 2. */
class UsageError extends Error {}

function fail(message: string): never {
  throw new UsageError(message)
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { name: { type: 'string' }, role: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
})
const [command, ...rest] = positionals
if (values.help || !command) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(values.help ? 0 : 2)
}

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig()
} catch (err) {
  process.stderr.write(`token: ${err instanceof ConfigError ? err.message : String(err)}\n`)
  process.exit(2)
}
const embedded = config.databaseUrl ? undefined : await useEmbeddedPostgres(config.dataDir)
const sql = postgres(config.databaseUrl ?? (embedded?.url as string), {
  max: 1,
  onnotice: () => {},
  transform: COLUMN_CASE,
})
const actor = `cli:${process.env.USER ?? 'unknown'}`
try {
  await migrate(sql)
  const tokens = createTokens(sql, { envAdminToken: config.adminToken })
  const audit = createAudit(sql, 'cli')
  if (command === 'create') {
    const { name, role } = values
    if (!name) fail('create needs --name <name>')
    if (!role || !ROLES.includes(role as Role)) fail(`create needs --role, one of ${ROLES.join(', ')}`)
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name))
      fail('--name: letters, digits, ".", "_" and "-", up to 100 characters')
    const { token, info } = await tokens.create({ name, role: role as Role, createdBy: actor })
    await audit.record({ actor, action: 'token.create', target: name, after: info })
    process.stderr.write(`created ${role} token "${name}"; it is shown once:\n`)
    process.stdout.write(`${token}\n`)
  } else if (command === 'list') {
    const list = await tokens.list()
    if (list.length === 0) process.stdout.write('no tokens\n')
    for (const t of list) {
      process.stdout.write(
        `${t.name.padEnd(24)} ${t.role.padEnd(8)} created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}\n`,
      )
    }
  } else if (command === 'revoke') {
    const [name] = rest
    if (!name) fail('revoke needs a token name')
    const before = await tokens.revoke(name)
    await audit.record({ actor, action: 'token.revoke', target: name, before })
    process.stdout.write(`revoked "${name}"\n`)
  } else {
    fail(`unknown command "${command}"\n${USAGE}`)
  }
} catch (err) {
  const status = (err as { statusCode?: number }).statusCode
  if (!(err instanceof UsageError) && !(status && status < 500)) throw err
  process.stderr.write(`token: ${(err as Error).message}\n`)
  process.exitCode = 2
} finally {
  await sql.end()
  await embedded?.stop()
}
