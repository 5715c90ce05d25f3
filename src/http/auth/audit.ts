// The audit log: who changed or triggered what, when, with the values before and after. Rows are
// only ever inserted; the API reads them newest first with keyset pagination.
import type { Sql } from 'postgres'
import type { JsonValue } from '../../lib/json.js'
import { allOf, decodeCursor, type Page, toPage } from '../../lib/pagination.js'
import type { AuditAction, AuditEntry } from './schemas.js'

export interface AuditInput {
  actor: string
  action: AuditAction
  target?: string | number
  before?: unknown
  after?: unknown
}

export interface AuditFilter {
  actor?: string
  action?: AuditAction
  target?: string
  since?: string
  until?: string
}

interface AuditRow extends Omit<AuditEntry, 'at'> {
  at: Date
}

/** Dates and undefined become what JSON would make of them, so jsonb gets plain values. */
const json = (value: unknown): JsonValue | null =>
  value === undefined ? null : (JSON.parse(JSON.stringify(value)) as JsonValue)

export function createAudit(sql: Sql, instance: string) {
  const jsonb = (value: unknown) => {
    const plain = json(value)
    return plain === null ? null : sql.json(plain)
  }
  return {
    async record(entry: AuditInput): Promise<void> {
      await sql`
        insert into audit_log (actor, action, target, before, after, instance)
        values (${entry.actor}, ${entry.action}, ${entry.target === undefined ? null : String(entry.target)},
                ${jsonb(entry.before)}, ${jsonb(entry.after)}, ${instance})`
    },

    async list(filter: AuditFilter, limit: number, cursor?: string): Promise<Page<AuditEntry>> {
      const after = cursor ? decodeCursor(cursor) : null
      const where = allOf(sql, [
        filter.actor !== undefined && sql`actor = ${filter.actor}`,
        filter.action !== undefined && sql`action = ${filter.action}`,
        filter.target !== undefined && sql`target = ${filter.target}`,
        filter.since !== undefined && sql`at >= ${filter.since}`,
        filter.until !== undefined && sql`at < ${filter.until}`,
        after !== null && sql`id < ${after}`,
      ])
      const rows = await sql<AuditRow[]>`
        select id, at, actor, action, target, before, after, instance
        from audit_log where ${where} order by id desc limit ${limit + 1}`
      return toPage(
        rows.map((row) => ({ ...row, id: Number(row.id), at: row.at.toISOString() })),
        limit,
      )
    },
  }
}

export type Audit = ReturnType<typeof createAudit>
