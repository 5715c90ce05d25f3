// Just enough TOML for dependency tables (Cargo.toml, pyproject.toml): `[table]` headers and
// `key = value` lines whose value is a string, an inline table or an array (possibly over several
// lines). Not a TOML parser; anything else is skipped. Linear in the text: each line is read once.

export interface TomlEntry {
  table: string
  key: string
  /** The raw value text, e.g. `"1.0"`, `{ version = "1", features = [...] }`, `["a>=1", "b"]`. */
  value: string
}

function stripComment(line: string): string {
  if (!line.includes('#')) return line
  let quote: string | null = null
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quote) {
      if (c === quote) quote = null
    } else if (c === '"' || c === "'") quote = c
    else if (c === '#') return line.slice(0, i)
  }
  return line
}

/** Brackets and braces opened minus closed, quotes not considered. */
function depth(text: string): number {
  let open = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x5b || c === 0x7b) open++
    else if (c === 0x5d || c === 0x7d) open--
  }
  return open
}

const KEY = /^("[^"]+"|'[^']+'|[\w.-]+)\s*=/
const LINE_BREAK = /[\r\u2028\u2029]/

/**
 * A `key = value` line, or null. The value is what `\s*(.*)$` captured: the rest of the line after
 * its leading whitespace, and no entry at all when that holds a line break (`.` stops at \r).
 */
function keyValue(table: string, line: string): TomlEntry | null {
  const kv = KEY.exec(line)
  if (!kv) return null
  // Sliced rather than matched: `\s*(.*)$` tried every split of a line's whitespace (quadratic).
  const value = line.slice(kv[0].length).trimStart()
  if (LINE_BREAK.test(value)) return null
  return { table, key: (kv[1] as string).replace(/^["']|["']$/g, ''), value }
}

export function tomlEntries(text: string): TomlEntry[] {
  const entries: TomlEntry[] = []
  let table = ''
  // A value over several lines: its lines so far and how many brackets they leave open, counted
  // line by line (counting the whole value again after each line is quadratic).
  let pending: { entry: TomlEntry; lines: string[]; open: number } | null = null
  for (const raw of text.split('\n')) {
    const line = stripComment(raw).trim()
    if (pending) {
      pending.lines.push(line)
      pending.open += depth(line)
      if (pending.open <= 0) {
        pending.entry.value = pending.lines.join(' ')
        pending = null
      }
      continue
    }
    const header = /^\[\[?([^\]]+)\]\]?$/.exec(line)
    if (header) {
      table = (header[1] as string).trim()
      continue
    }
    const entry = keyValue(table, line)
    if (!entry) continue
    entries.push(entry)
    const open = depth(entry.value)
    if (open > 0) pending = { entry, lines: [entry.value], open }
  }
  if (pending) pending.entry.value = pending.lines.join(' ')
  return entries
}

/** A string value, or the `version` of an inline table; null for path/git dependencies. */
export function tomlVersion(value: string): string | null {
  const plain = /^["']([^"']*)["']$/.exec(value.trim())
  if (plain) return plain[1] as string
  return /\bversion\s*=\s*["']([^"']*)["']/.exec(value)?.[1] ?? null
}

/** The strings of an array value. */
export function tomlStrings(value: string): string[] {
  return Array.from(value.matchAll(/"([^"]*)"|'([^']*)'/g), (m) => m[1] ?? m[2] ?? '')
}
