// Keyset pagination: an opaque cursor carrying the id of the last item of the previous page.
import type { PendingQuery, Row, Sql } from 'postgres'

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

export class CursorError extends Error {}

export function encodeCursor(id: number): string {
  return Buffer.from(`id:${id}`).toString('base64url')
}

export function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  const match = /^id:(\d{1,15})$/.exec(text)
  if (!match)
    throw new CursorError('cursor is not one this server issued; use nextCursor from a previous page')
  return Number(match[1])
}

/** A cursor for lists ordered by a unique name instead of an id. */
export function encodeNameCursor(name: string): string {
  return Buffer.from(`name:${name}`).toString('base64url')
}

export function decodeNameCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  if (!text.startsWith('name:') || text.length > 300)
    throw new CursorError('cursor is not one this server issued; use nextCursor from a previous page')
  return text.slice('name:'.length)
}

/**
 * The filters that apply (`false` entries are the ones left unset), joined with `and`; `true`
 * when none do. Keyset lists build their `where` with it.
 */
export function allOf(sql: Sql, conditions: (PendingQuery<Row[]> | false)[]): PendingQuery<Row[]> {
  return conditions.reduce<PendingQuery<Row[]>>(
    (acc, condition) => (condition === false ? acc : sql`${acc} and ${condition}`),
    sql`true`,
  )
}

/**
 * A page from rows fetched newest first with `limit + 1`: the extra row only says whether another
 * page follows, and the cursor points after the last item shown.
 */
export function toPage<T extends { id: number }>(items: T[], limit: number): Page<T> {
  const shown = items.slice(0, limit)
  const last = shown[shown.length - 1]
  return { items: shown, nextCursor: items.length > limit && last ? encodeCursor(last.id) : null }
}
