// API tokens: bearer tokens with a role, stored only as their sha256. The environment's
// STEWARD_ADMIN_TOKEN is an admin token that lives in memory only. Lookups are cached for a few
// seconds; a revoke clears the cache on every instance (NOTIFY), so a revoked token stops working
// at once where it was revoked and within the cache lifetime elsewhere, even if a notification is lost.
// What outlives a request (an open GET /events stream) watches for revokes and re-checks its token
// with `live`, which reads the database rather than the cache.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Sql } from 'postgres'
import { Conflict, NotFound } from '../../lib/errors.js'

export const ROLES = ['viewer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]

/** Whoever made the request: a token's name and role. */
export interface Principal {
  name: string
  role: Role
}

export interface TokenInfo {
  name: string
  role: Role
  createdAt: string
  createdBy: string | null
  lastUsedAt: string | null
}

/** The principal of STEWARD_ADMIN_TOKEN; also the actor name its actions are audited under. */
export const ENV_ADMIN = 'STEWARD_ADMIN_TOKEN'
export const BOOTSTRAP_TOKEN_NAME = 'admin'
export const TOKEN_CHANNEL = 'steward_tokens'

const CACHE_MS = 5000
const CACHE_MAX = 1000
const TOUCH_MS = 60_000
/** Longer than any token we issue; longer headers are rejected without hashing or a query. */
const MAX_TOKEN_LENGTH = 512

export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need)
}

/** 32 random bytes, URL-safe, with a prefix that makes a leaked token easy to recognise. */
export function generateToken(): string {
  return `stw_${randomBytes(32).toString('base64url')}`
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '')
  return match?.[1] ?? null
}

interface TokenRow {
  name: string
  role: Role
  tokenHash: Buffer
  createdAt: Date
  createdBy: string | null
  lastUsedAt: Date | null
}

const toInfo = (row: TokenRow): TokenInfo => ({
  name: row.name,
  role: row.role,
  createdAt: row.createdAt.toISOString(),
  createdBy: row.createdBy,
  lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
})

export function createTokens(sql: Sql, options: { envAdminToken?: string }) {
  const envHash = options.envAdminToken ? hashToken(options.envAdminToken) : null
  const cache = new Map<string, { principal: Principal; hash: Buffer; until: number }>()
  const touched = new Map<string, number>()
  const revokeWatchers = new Set<(name?: string) => void>()

  function touch(hash: Buffer): void {
    const key = hash.toString('hex')
    const now = Date.now()
    if (now - (touched.get(key) ?? 0) < TOUCH_MS) return
    touched.set(key, now)
    if (touched.size > CACHE_MAX) touched.delete(touched.keys().next().value as string)
    // Best effort: last_used_at is informational and must never fail or slow a request.
    sql`update api_tokens set last_used_at = now() where token_hash = ${hash} and revoked_at is null`.catch(
      () => touched.delete(key),
    )
  }

  return {
    /** The principal a bearer token stands for, or null (unknown, revoked or malformed). */
    async authenticate(token: string): Promise<Principal | null> {
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null
      const hash = hashToken(token)
      if (envHash && timingSafeEqual(hash, envHash)) return { name: ENV_ADMIN, role: 'admin' }
      const key = hash.toString('hex')
      const cached = cache.get(key)
      if (cached && cached.until > Date.now() && timingSafeEqual(cached.hash, hash)) {
        touch(hash)
        return cached.principal
      }
      const [row] = await sql<{ name: string; role: Role; tokenHash: Buffer }[]>`
        select name, role, token_hash from api_tokens
        where token_hash = ${hash} and revoked_at is null`
      // The index found the row by equality; compare the digests once more in constant time so the
      // decision itself never depends on how many bytes matched.
      if (!row || !timingSafeEqual(row.tokenHash, hash)) return null
      const principal: Principal = { name: row.name, role: row.role }
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string)
      cache.set(key, { principal, hash, until: Date.now() + CACHE_MS })
      touch(hash)
      return principal
    },

    async create(input: { name: string; role: Role; createdBy: string }) {
      if (input.name === ENV_ADMIN)
        throw new Conflict(`"${ENV_ADMIN}" is reserved for the environment's token`)
      const token = generateToken()
      const rows = await sql<TokenRow[]>`
        insert into api_tokens (name, role, token_hash, created_by)
        values (${input.name}, ${input.role}, ${hashToken(token)}, ${input.createdBy})
        on conflict do nothing
        returning name, role, token_hash, created_at, created_by, last_used_at`
      const row = rows[0]
      if (!row)
        throw new Conflict(
          `a token named "${input.name}" already exists; revoke it first or pick another name`,
        )
      return { token, info: toInfo(row) }
    },

    /** Live tokens, by name. */
    async list(): Promise<TokenInfo[]> {
      const rows = await sql<TokenRow[]>`
        select name, role, token_hash, created_at, created_by, last_used_at
        from api_tokens where revoked_at is null order by name`
      return rows.map(toInfo)
    },

    /**
     * Revokes a live token by name. Refuses to revoke the last admin token when the environment
     * defines none, which would lock every admin out.
     */
    async revoke(name: string): Promise<TokenInfo> {
      if (name === ENV_ADMIN) {
        throw new Conflict(`${ENV_ADMIN} is set in the environment; unset it and restart to retire it`)
      }
      const info = await sql.begin(async (tx) => {
        // Serialise revokes so two concurrent ones cannot both see "another admin remains".
        await tx`select pg_advisory_xact_lock(hashtext('steward:tokens:revoke'))`
        const [row] = await tx<TokenRow[]>`
          select name, role, token_hash, created_at, created_by, last_used_at
          from api_tokens where name = ${name} and revoked_at is null`
        if (!row) throw new NotFound(`no live token is named "${name}"`)
        if (row.role === 'admin' && !envHash) {
          const [counted] = await tx<{ others: number }[]>`
            select count(*)::int as others from api_tokens
            where role = 'admin' and revoked_at is null and name <> ${name}`
          if (counted?.others === 0) {
            throw new Conflict(
              `"${name}" is the last admin token; create another admin token before revoking it`,
            )
          }
        }
        await tx`update api_tokens set revoked_at = now() where name = ${name} and revoked_at is null`
        await tx`select pg_notify(${TOKEN_CHANNEL}, ${name})`
        return toInfo(row)
      })
      this.forget(name)
      return info
    },

    /**
     * Drops cached lookups of a token (all of them when no name is given). Called when a token is
     * revoked here or on another instance (its notification), and with no name when notifications
     * may have been missed (the listening connection came back): so it also tells the watchers.
     */
    forget(name?: string): void {
      for (const [key, entry] of cache)
        if (name === undefined || entry.principal.name === name) cache.delete(key)
      for (const revoked of revokeWatchers) revoked(name)
    },

    /**
     * Calls `revoked` whenever a token may have been revoked, on any instance: with its name, or
     * with none when revokes may have gone unnoticed; until the returned function runs. It must not
     * throw.
     */
    watchRevocations(revoked: (name?: string) => void): () => void {
      revokeWatchers.add(revoked)
      return () => revokeWatchers.delete(revoked)
    },

    /**
     * Which of these tokens (their sha256, hex) are live now, read from the database and not the
     * cache, so a revoke whose notification was lost is seen as well. One query for all of them.
     */
    async live(keys: string[]): Promise<Set<string>> {
      const envKey = envHash?.toString('hex')
      const live = new Set(keys.filter((key) => key === envKey))
      const stored = keys.filter((key) => key !== envKey)
      if (stored.length === 0) return live
      const rows = await sql<{ key: string }[]>`
        select encode(token_hash, 'hex') as key from api_tokens
        where token_hash in (select decode(k, 'hex') from unnest(${stored}::text[]) k)
          and revoked_at is null`
      for (const row of rows) live.add(row.key)
      return live
    },

    /**
     * First start with no token configured at all (no STEWARD_ADMIN_TOKEN, no live token): create
     * an admin token and write it to DATA_DIR/admin-token (0600). Returns the file's path, or null
     * when a token already exists. Safe when several instances start together: one insert wins.
     */
    async bootstrap(dataDir: string): Promise<string | null> {
      if (envHash) return null
      const [existing] = await sql<{ live: number }[]>`
        select count(*)::int as live from api_tokens where revoked_at is null`
      if ((existing?.live ?? 0) > 0) return null
      const token = generateToken()
      const file = path.join(dataDir, 'admin-token')
      // The file is written before the row exists and renamed into place after: a token that is in
      // the database is always one somebody can read.
      const pending = `${file}.${process.pid}.tmp`
      await fs.mkdir(dataDir, { recursive: true })
      await fs.writeFile(pending, `${token}\n`, { mode: 0o600 })
      try {
        const created = await sql.begin(async (tx) => {
          await tx`select pg_advisory_xact_lock(hashtext('steward:tokens:revoke'))`
          const [again] = await tx<{ live: number }[]>`
            select count(*)::int as live from api_tokens where revoked_at is null`
          if ((again?.live ?? 0) > 0) return false
          await tx`
            insert into api_tokens (name, role, token_hash, created_by)
            values (${BOOTSTRAP_TOKEN_NAME}, 'admin', ${hashToken(token)}, 'first start')`
          return true
        })
        if (!created) return null
        await fs.rename(pending, file)
      } finally {
        await fs.rm(pending, { force: true })
      }
      return file
    },
  }
}

export type Tokens = ReturnType<typeof createTokens>
