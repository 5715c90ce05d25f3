// The scratch database a restore check restores into, and the role it restores as. A dump is code:
// restored by a superuser, a hostile one could run COPY … TO PROGRAM, read the server's files or
// grant itself a role. So a check restores as a role of its own, with no attribute but LOGIN, which
// owns the scratch database: the dump can do what the owner of an empty database can, nothing else.
// Rules it keeps:
// - each check logs in as a new role, steward_restore_<scratch suffix>, made for it and dropped with
//   its database (SET ROLE would not do: the dump could RESET ROLE). Its password is random, sent
//   as a SCRAM verifier (so it shows in no server log) and never reused; a role per check, because
//   roles are server-wide and checks of other Steward databases on the same server may overlap;
// - those roles are members of steward_restore, a NOLOGIN role made when missing, so that a strict
//   pg_hba.conf can let them in with one line (`+steward_restore`); a steward_restore that has any
//   attribute (SUPERUSER, CREATEROLE …) or membership is refused, not changed: someone made it so;
// - the restored tables are counted in the role's session too: nothing the dump left behind (a
//   search_path, a function shadowing a built-in) ever runs as Steward's role;
// - extensions the role may not create itself (pgvector is not trusted) are created beforehand by
//   Steward's role, only those the backed-up database or Steward's own has (extensions.ts).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import postgres, { type Sql } from 'postgres'
import { BackupError } from '../tools.js'
import { allowedExtensions, extensionCreator } from './extensions.js'

export const RESTORE_ROLE = 'steward_restore'
export const SCRATCH_PREFIX = 'steward_verify_'
export const LOGIN_PREFIX = `${RESTORE_ROLE}_`

/** The check could not be carried out here (no client tools, no right to create a database or role). */
export class VerifyUnavailable extends BackupError {}

export interface Sandbox {
  database: string
  user: string
  password: string
  /** The role's own session in the scratch database. */
  sql: Sql
  /** Called before the dump's CREATE EXTENSION runs: creates it first when it is one we allow. */
  createExtension(name: string, schema: string): Promise<void>
}

export interface SandboxDeps {
  /** Steward's own connection (with its role: creates and drops the scratch database and role). */
  sql: Sql
  databaseUrl: string
  /** The database the backup was taken of: its extensions may be created beforehand. */
  sourceDatabase: string
  backupId: number
}

/** steward_verify_<unix seconds>_<backup id>_<random>: the age lets a later start-up drop leftovers. */
export function scratchName(id: number, now = new Date()): string {
  return `${SCRATCH_PREFIX}${Math.floor(now.getTime() / 1000)}_${id}_${randomBytes(4).toString('hex')}`
}

/** When a scratch database (steward_verify_…) or its login role (steward_restore_…) was made. */
export function scratchCreatedAt(name: string): Date | null {
  const match = /^steward_(?:verify|restore)_(\d+)_\d+_[0-9a-f]+$/.exec(name)
  return match ? new Date(Number(match[1]) * 1000) : null
}

/** The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, 7677), as \password sends it. */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest('base64')
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64')
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey}:${serverKey}`
}

const unavailable = (what: string, err: unknown) =>
  new VerifyUnavailable('restore_role', `${what}: ${(err as Error).message}`)

const ATTRIBUTES = {
  rolsuper: 'SUPERUSER',
  rolcreaterole: 'CREATEROLE',
  rolcreatedb: 'CREATEDB',
  rolreplication: 'REPLICATION',
  rolbypassrls: 'BYPASSRLS',
  rolcanlogin: 'LOGIN',
} as const

type RoleState = Record<keyof typeof ATTRIBUTES, boolean> & { memberOf: string[] }

async function roleState(sql: Sql): Promise<RoleState | null> {
  const [row] = await sql<RoleState[]>`
    select r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, r.rolcanlogin,
           array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid
                 where m.member = r.oid order by 1) as member_of
    from pg_roles r where r.rolname = ${RESTORE_ROLE}`
  return row ?? null
}

/** Why steward_restore may not be used, or null when it is as plain as a restore needs. */
function tooPowerful(state: RoleState): string | null {
  const attributes = Object.entries(ATTRIBUTES)
    .filter(([column]) => state[column as keyof typeof ATTRIBUTES])
    .map(([, name]) => name)
  if (attributes.length > 0) return `it has ${attributes.join(', ')}`
  if (state.memberOf.length > 0) return `it is a member of ${state.memberOf.join(', ')}`
  return null
}

/** Makes steward_restore (NOLOGIN, nothing else) when missing; refuses one with more. */
async function ensureGroup(sql: Sql): Promise<void> {
  let state = await roleState(sql)
  if (!state) {
    // The defaults are NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS.
    await sql.unsafe(`create role ${RESTORE_ROLE} nologin`).catch((err: { code?: string }) => {
      // Made meanwhile by another check on this server (42710, or 23505 when both were inserting).
      if (err.code !== '42710' && err.code !== '23505')
        throw unavailable(`cannot create the role ${RESTORE_ROLE}`, err)
    })
    state = await roleState(sql)
  }
  const why = state ? tooPowerful(state) : 'it does not exist'
  if (why)
    throw new VerifyUnavailable(
      'restore_role',
      `restore checks run as members of the role ${RESTORE_ROLE}, which must be NOLOGIN with no other ` +
        `attribute and no membership, but ${why}; fix it (ALTER ROLE, REVOKE) or drop it to have it made anew`,
    )
}

/** A new login role for one check, with a random password; returns the password. */
async function createLogin(sql: Sql, login: string): Promise<string> {
  const password = randomBytes(24).toString('base64url')
  const validUntil = new Date(Date.now() + 24 * 3600_000).toISOString()
  // The name is ours ([a-z0-9_]) and a verifier is base64, digits, '$' and ':': both safe to write
  // into the statement (utility statements take no parameters). INHERIT: as the scratch database's
  // owner it uses pg_database_owner's rights on schema public.
  await sql
    .unsafe(
      `create role ${login} login inherit in role ${RESTORE_ROLE} ` +
        `password '${scramVerifier(password)}' valid until '${validUntil}'`,
    )
    .catch((err) => {
      throw unavailable(`cannot create the role ${login} a restore check runs as`, err)
    })
  return password
}

async function createScratch(sql: Sql, name: string, owner: string): Promise<void> {
  const [me] = await sql<{ superuser: boolean }[]>`
    select rolsuper as superuser from pg_roles where rolname = current_user`
  // A non-superuser may make a database owned by a role it can SET ROLE to (its creator may grant that).
  if (!me?.superuser) await sql.unsafe(`grant ${owner} to current_user`).catch(() => {})
  try {
    // template0: a restore must start from an empty database, whatever was added to template1.
    await sql`create database ${sql(name)} owner ${sql(owner)} template template0`
  } catch (err) {
    throw new VerifyUnavailable(
      'scratch_database',
      `cannot create a scratch database: ${(err as Error).message}`,
    )
  }
}

async function loginAs(databaseUrl: string, database: string, user: string, password: string) {
  const session = postgres(databaseUrl, {
    database,
    user,
    pass: password,
    max: 1,
    onnotice: () => {},
    connect_timeout: 10,
  })
  try {
    await session`select 1`
    return session
  } catch (err) {
    await session.end({ timeout: 1 }).catch(() => {})
    throw unavailable(`cannot log in as ${user} (let members of ${RESTORE_ROLE} in, in pg_hba.conf)`, err)
  }
}

/** Runs `work` in a new scratch database owned by a new restore role; both always dropped afterwards. */
export async function withSandbox<T>(deps: SandboxDeps, work: (sandbox: Sandbox) => Promise<T>): Promise<T> {
  const { sql } = deps
  await ensureGroup(sql)
  const database = scratchName(deps.backupId)
  const user = LOGIN_PREFIX + database.slice(SCRATCH_PREFIX.length)
  const password = await createLogin(sql, user)
  try {
    await createScratch(sql, database, user)
    try {
      const session = await loginAs(deps.databaseUrl, database, user, password)
      try {
        const createExtension = extensionCreator(deps, database, await allowedExtensions(deps))
        return await work({ database, user, password, sql: session, createExtension })
      } finally {
        await session.end({ timeout: 5 })
      }
    } finally {
      await sql`drop database if exists ${sql(database)} with (force)`
    }
  } finally {
    // Left behind only if its database could not be dropped: start-up drops both later.
    await sql.unsafe(`drop role if exists ${user}`).catch(() => {})
  }
}
