// Just enough TOML for dependency tables (Cargo.toml, pyproject.toml): `[table]` headers and
// `key = value` lines whose value is a string, an inline table or an array (possibly over several
// lines). Not a TOML parser; anything else is skipped.

export interface TomlEntry {
  table: string
  key: string
  /** The raw value text, e.g. `"1.0"`, `{ version = "1", features = [...] }`, `["a>=1", "b"]`. */
  value: string
}

function stripComment(line: string): string {
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

const depth = (text: string) => (text.match(/[[{]/g)?.length ?? 0) - (text.match(/[\]}]/g)?.length ?? 0)

export function tomlEntries(text: string): TomlEntry[] {
  const entries: TomlEntry[] = []
  let table = ''
  let pending: TomlEntry | null = null
  for (const raw of text.split('\n')) {
    const line = stripComment(raw).trim()
    if (pending) {
      pending.value += ` ${line}`
      if (depth(pending.value) <= 0) pending = null
      continue
    }
    const header = /^\[\[?([^\]]+)\]\]?$/.exec(line)
    if (header) {
      table = (header[1] as string).trim()
      continue
    }
    const kv = /^("[^"]+"|'[^']+'|[\w.-]+)\s*=\s*(.*)$/.exec(line)
    if (!kv) continue
    const entry = { table, key: (kv[1] as string).replace(/^["']|["']$/g, ''), value: kv[2] as string }
    entries.push(entry)
    if (depth(entry.value) > 0) pending = entry
  }
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
