// Import extraction for the registry's architecture view: a scan per language, good enough to see
// which parts of a tree depend on which (not a parser; comments can fool it). Every scan is linear
// in the file: the files are hostile input read on the event loop, so no pattern here may
// backtrack over the same text more than a bounded number of times (test/registry-redos.test.ts).
import { jsStaticImports } from './js-imports.js'
import { closedSpans } from './scan.js'

export type ImportSyntax = 'js' | 'python' | 'go' | 'elixir'

const SYNTAX: Record<string, ImportSyntax> = {
  TypeScript: 'js',
  JavaScript: 'js',
  Python: 'python',
  Go: 'go',
  Elixir: 'elixir',
}

export function importSyntaxOf(language: string): ImportSyntax | null {
  return SYNTAX[language] ?? null
}

// In these, adjacent quantified parts never match the same characters (`[ \t]+` then `[\w.]+`, not
// `\.*` then `[\w.]*`), so a failing attempt backs out of what it read once instead of trying
// every way of splitting it.
const JS_CALL = /\b(?:import|require)\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g
const PY_IMPORT = /^[ \t]*import[ \t]+([\w.]+(?:[ \t]*,[ \t]*[\w.]+)*)/gm
// An empty module (`from  import x`) was never reported, so the name may not be empty.
const PY_FROM = /^[ \t]*from[ \t]+([\w.]+)[ \t]+import\b/gm
const GO_SINGLE = /^[ \t]*import[ \t]+(?:[\w.]+[ \t]+)?"([^"]+)"/gm
const GO_BLOCK_OPEN = /^[ \t]*import[ \t]*\(/gm
const GO_BLOCK_LINE = /^[ \t]*(?:[\w.]+[ \t]+)?"([^"]+)"/gm
const EX_DIRECTIVE = /^[ \t]*(?:alias|import|use|require)[ \t]+([A-Z]\w*(?:\.[A-Z]\w*)*)/gm
const EX_DEFMODULE = /^[ \t]*defmodule[ \t]+([A-Z][\w.]*)[ \t]+do\b/gm

function captures(text: string, pattern: RegExp): string[] {
  return Array.from(text.matchAll(pattern), (m) => m[1] ?? '').filter(Boolean)
}

function elixirImports(text: string): string[] {
  const out: string[] = []
  // A `.{` list after the last `}` never closes: knowing that up front saves scanning to the end.
  const lastClose = text.lastIndexOf('}')
  EX_DIRECTIVE.lastIndex = 0
  for (let m = EX_DIRECTIVE.exec(text); m; m = EX_DIRECTIVE.exec(text)) {
    const head = m[1] as string
    const open = EX_DIRECTIVE.lastIndex
    if (!text.startsWith('.{', open) || lastClose < open + 2) {
      out.push(head)
      continue
    }
    // `alias MyApp.{Accounts, Repo}` names several modules.
    const close = text.indexOf('}', open + 2)
    for (const tail of text.slice(open + 2, close).split(','))
      if (tail.trim()) out.push(`${head}.${tail.trim()}`)
    EX_DIRECTIVE.lastIndex = close + 1
  }
  return out
}

/** The import specifiers of one file, as written (resolving them is registry-resolve's job). */
export function extractImports(syntax: ImportSyntax, text: string): string[] {
  switch (syntax) {
    case 'js':
      return [...jsStaticImports(text), ...captures(text, JS_CALL)]
    case 'python':
      return [
        ...captures(text, PY_IMPORT).flatMap((list) => list.split(',').map((s) => s.trim())),
        ...captures(text, PY_FROM),
      ]
    case 'go':
      return [
        ...captures(text, GO_SINGLE),
        ...closedSpans(text, GO_BLOCK_OPEN, ')').flatMap((block) => captures(block, GO_BLOCK_LINE)),
      ]
    case 'elixir':
      return elixirImports(text)
  }
}

/** The modules an Elixir file defines, to map `alias Foo.Bar` back to a file. */
export function elixirModules(text: string): string[] {
  return captures(text, EX_DEFMODULE)
}

/** The module path a go.mod declares. */
export function goModulePath(text: string): string | null {
  return /^module[ \t]+(\S+)/m.exec(text)?.[1] ?? null
}
