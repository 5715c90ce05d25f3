// What a restore check feeds to psql: the dump's SQL script without the statements that only the
// objects' old owners or a superuser may run and that say nothing about the data: ownership
// (ALTER … OWNER TO), privileges (GRANT, REVOKE, ALTER DEFAULT PRIVILEGES) and extension comments
// (COMMENT ON EXTENSION: only the extension's owner may). That is pg_restore's --no-owner
// --no-privileges, for plain scripts too, so that the check can restore as a role without rights.
// And psql runs it in restricted mode (\restrict, with a random key the dump cannot know): a hostile
// dump's meta-commands (\! shell commands, \copy … program, \o |command) run on Steward's own host,
// beyond any role's reach, so psql must refuse them all.
// Rules it keeps:
// - whole lines of pg_dump's output only, and never inside COPY data (from `COPY … FROM stdin;` to
//   `\.`): a row that happens to read like a GRANT is data and passes untouched;
// - a `CREATE EXTENSION IF NOT EXISTS x WITH SCHEMA s;` line is announced (onExtension) and awaited
//   before psql sees it, so that the extension can be created first by someone allowed to;
// - constant memory: lines are handled as they stream through.
import { randomBytes } from 'node:crypto'
import { Transform } from 'node:stream'
import type { Tool } from '../tools.js'

const NEWLINE = 0x0a
const BACKSLASH = 0x5c
const DOT = 0x2e

// pg_dump's own restricted mode (since 13.22, 14.19, 15.14, 16.10, 17.6): ours is already on.
const RESTRICT_LINE = /^\\(restrict|unrestrict)( .*)?$/
const PRIVILEGES = [
  /^ALTER [A-Z][A-Z ]* .* OWNER TO [^;]+;$/,
  /^(GRANT|REVOKE) .*;$/,
  /^ALTER DEFAULT PRIVILEGES .*;$/,
  /^COMMENT ON EXTENSION .*;$/,
]
const IDENT = '("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)'
const CREATE_EXTENSION = new RegExp(`^CREATE EXTENSION IF NOT EXISTS ${IDENT} WITH SCHEMA ${IDENT};$`)
// Statements start with a capital letter in pg_dump's output; anything else is not looked at.
const FIRST = new Set(['A', 'G', 'R', 'C', '\\'].map((c) => c.charCodeAt(0)))

// The first releases of each major version whose psql knows \restrict (CVE-2025-8714).
const RESTRICT_SINCE: Record<number, number> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 }

/** Whether this psql can be put in restricted mode; without it a restore check is not safe to run. */
export function canRestrict(psql: Tool): boolean {
  const minor = Number(psql.version.split('.')[1] ?? 0)
  if (psql.major >= 18) return true
  const since = RESTRICT_SINCE[psql.major]
  return since !== undefined && minor >= since
}

const unquote = (ident: string) => (ident.startsWith('"') ? ident.slice(1, -1).replaceAll('""', '"') : ident)

export type OnExtension = (name: string, schema: string) => Promise<void>

/** The `\\restrict` line that opens what psql is fed: a key of its own, unknown to any dump. */
const restrictLine = () => `\\restrict ${randomBytes(24).toString('base64url')}\n`

/**
 * A script with no COPY data (globals.sql) made safe for psql: its own \\restrict and \\unrestrict
 * lines out, ours first.
 */
export function restricted(script: string): string {
  const kept = script.split('\n').filter((line) => !RESTRICT_LINE.test(line.replace(/\r$/, '')))
  return restrictLine() + kept.join('\n')
}

/**
 * The restore check's filter (owners and privileges dropped, extensions announced), or with
 * `keepPrivileges` the restore command's (only psql's restricted mode added, everything else kept).
 */
export function scriptFilter(
  onExtension: OnExtension | null,
  { keepPrivileges = false }: { keepPrivileges?: boolean } = {},
): Transform {
  const dropped = keepPrivileges ? [RESTRICT_LINE] : [...PRIVILEGES, RESTRICT_LINE]
  let carry: Buffer = Buffer.alloc(0)
  let copying = false
  let started = false
  /** The first output starts with \restrict and a key of its own, unknown to the dump. */
  const opening = (out: Buffer) => {
    if (started) return out
    started = true
    return Buffer.concat([Buffer.from(restrictLine()), out])
  }

  /** What to do with one statement line (without its newline): keep it or not; announces extensions. */
  async function keep(text: string): Promise<boolean> {
    if (text.startsWith('COPY ') && text.endsWith(' FROM stdin;')) {
      copying = true
      return true
    }
    if (dropped.some((pattern) => pattern.test(text))) return false
    const extension = onExtension && CREATE_EXTENSION.exec(text)
    if (extension) await onExtension(unquote(extension[1] as string), unquote(extension[2] as string))
    return true
  }

  /** The kept lines of a block of whole lines. */
  async function filter(block: Buffer): Promise<Buffer> {
    const parts: Buffer[] = []
    let kept = 0 // start of the run of kept lines not yet in parts
    let start = 0
    while (start < block.length) {
      const nl = block.indexOf(NEWLINE, start)
      const end = nl === -1 ? block.length : nl
      const next = nl === -1 ? block.length : nl + 1
      const last = end > start && block[end - 1] === 0x0d ? end - 1 : end
      if (copying) {
        // Data rows are not decoded: only the terminator matters.
        if (last - start === 2 && block[start] === BACKSLASH && block[start + 1] === DOT) copying = false
      } else if (FIRST.has(block[start] as number) && !(await keep(block.toString('utf8', start, last)))) {
        parts.push(block.subarray(kept, start))
        kept = next
      }
      start = next
    }
    parts.push(block.subarray(kept))
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
  }

  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk
      const end = buf.lastIndexOf(NEWLINE)
      carry = end === -1 ? buf : buf.subarray(end + 1)
      if (end === -1) return callback()
      filter(buf.subarray(0, end + 1)).then((out) => callback(null, opening(out)), callback)
    },
    flush(callback) {
      filter(carry).then((out) => callback(null, opening(out)), callback)
    },
  })
}
