// Static JavaScript/TypeScript import specifiers for the registry: `import x from 'y'`, `import 'y'`,
// `import type { T } from 'y'`, `export { a } from 'y'`, `export * from 'y'`, lists over several
// lines. A keyword regex and a forward scan instead of one regex: that regex (a lazy, bounded gap
// before `from` between greedy whitespace runs) backtracked cubically on whitespace after `import`,
// and made each of many `import` keywords rescan the same 2000 characters. Here each character is
// scanned a bounded number of times, since a scan is shared by every keyword that reaches it.
// It finds what that regex found (test/registry-redos.test.ts compares the two).

/** The keyword, its whitespace and an optional `type` modifier. */
const KEYWORD = /\b(?:import|export)\s+(?:type\s+)?/g
/** What ends the gap between keyword and `from`: `from` before a quote, or what no import list holds. */
const GAP_END = /from\s*['"]|['"`;=()]/g
/** A specifier: one line, between quotes (either kind at either end, as before). */
const SPECIFIER = /['"]([^'"\n]+)['"]/y
/**
 * At most this many characters between the keyword (with its whitespace and `type`) and `from`,
 * whitespace before `from` not counted: an `import` in prose does not reach a `from` far below.
 */
const MAX_GAP = 2000
const SPACE = /\s/

interface Found {
  spec: string
  /** Just after the closing quote: where the search for the next import resumes. */
  end: number
}

interface Gap {
  /** Where the gap ends: the `from`, the character that ends it, or the end of the text. */
  at: number
  /** The specifier after `from`; null when something else ends the gap or the specifier is malformed. */
  found: Found | null
  /** Whitespace just before the `from`, which MAX_GAP does not count. */
  space: number
}

function specifier(text: string, quote: number): Found | null {
  SPECIFIER.lastIndex = quote
  const m = SPECIFIER.exec(text)
  return m ? { spec: m[1] as string, end: SPECIFIER.lastIndex } : null
}

function scanGap(text: string, from: number): Gap {
  GAP_END.lastIndex = from
  const m = GAP_END.exec(text)
  if (!m) return { at: text.length, found: null, space: 0 }
  if (!m[0].startsWith('from')) return { at: m.index, found: null, space: 0 }
  let space = 0
  while (m.index > space && SPACE.test(text[m.index - space - 1] as string)) space++
  return { at: m.index, found: specifier(text, GAP_END.lastIndex - 1), space }
}

/** The specifiers of a file's static imports and re-exports, in order. */
export function jsStaticImports(text: string): string[] {
  const specs: string[] = []
  // The last scan: keywords come in order, so while one starts before where that scan stopped,
  // the scan's result is its result too.
  let gap: Gap | null = null
  KEYWORD.lastIndex = 0
  for (let m = KEYWORD.exec(text); m; m = KEYWORD.exec(text)) {
    const start = KEYWORD.lastIndex
    let found: Found | null = null
    if (text[start] === "'" || text[start] === '"') found = specifier(text, start)
    else {
      if (!gap || gap.at < start) gap = scanGap(text, start)
      if (gap.at - gap.space - start <= MAX_GAP) found = gap.found
    }
    KEYWORD.lastIndex = found ? found.end : m.index + 1
    if (found) specs.push(found.spec)
  }
  return specs
}
