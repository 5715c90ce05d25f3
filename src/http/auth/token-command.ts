// `steward token create|list|revoke` (also `npm run token -- …`): API tokens from a shell, with the
// same rules and audit as POST/GET/DELETE /tokens. The command line wires it to a database.
import { parseArgs } from 'node:util'
import type { Sql } from 'postgres'
import { InvalidInput } from '../../lib/errors.js'
import { createAudit } from './audit.js'
import { TOKEN_NAME_PATTERN } from './schemas.js'
import { createTokens, ROLES, type Role } from './tokens.js'

export const TOKEN_USAGE = `usage:
  steward token create --name <name> --role <viewer|operator|admin>
      prints the new token on stdout, once: T=$(npx steward token create --name ci --role operator)
  steward token list
  steward token revoke <name>

Works on DATABASE_URL, or on the embedded database of DATA_DIR (with the server running or not).
Changes are recorded in the audit log as cli:<your OS user name>.`

export type TokenCommand =
  | { action: 'create'; name: string; role: Role }
  | { action: 'list' }
  | { action: 'revoke'; name: string }

const NAME = new RegExp(TOKEN_NAME_PATTERN)

/** Throws InvalidInput (a usage error) for anything it cannot run. */
export function parseTokenArgs(argv: string[]): TokenCommand {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: { name: { type: 'string' }, role: { type: 'string' } },
  })
  const [action, ...rest] = positionals
  const name = typeof values.name === 'string' ? values.name : undefined
  const role = typeof values.role === 'string' ? values.role : undefined
  if (action === 'create') {
    if (!name) throw new InvalidInput('token create needs --name <name>')
    if (!NAME.test(name))
      throw new InvalidInput('--name: letters, digits, ".", "_" and "-", up to 100 characters')
    if (!role || !ROLES.includes(role as Role))
      throw new InvalidInput(`token create needs --role, one of: ${ROLES.join(', ')}`)
    return { action, name, role: role as Role }
  }
  if (action === 'list') return { action }
  if (action === 'revoke') {
    if (!rest[0]) throw new InvalidInput('token revoke needs a token name')
    return { action, name: rest[0] }
  }
  throw new InvalidInput(action ? `unknown token command "${action}"\n${TOKEN_USAGE}` : TOKEN_USAGE)
}

export interface TokenIo {
  /** stdout: the token alone, or the list. */
  out(text: string): void
  /** stderr: what happened. */
  say(text: string): void
}

export async function runTokenCommand(
  sql: Sql,
  command: TokenCommand,
  options: { actor: string; envAdminToken?: string },
  io: TokenIo,
): Promise<void> {
  const tokens = createTokens(sql, { envAdminToken: options.envAdminToken })
  const audit = createAudit(sql, 'cli')
  const { actor } = options
  if (command.action === 'create') {
    const { token, info } = await tokens.create({ name: command.name, role: command.role, createdBy: actor })
    await audit.record({ actor, action: 'token.create', target: command.name, after: info })
    io.say(`created ${command.role} token "${command.name}"; it is shown once:`)
    io.out(token)
  } else if (command.action === 'list') {
    const list = await tokens.list()
    if (list.length === 0) io.out('no tokens')
    for (const t of list) {
      io.out(
        `${t.name.padEnd(24)} ${t.role.padEnd(8)} created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}`,
      )
    }
  } else {
    const before = await tokens.revoke(command.name)
    await audit.record({ actor, action: 'token.revoke', target: command.name, before })
    io.out(`revoked "${command.name}"`)
  }
}
