// Import extraction for the registry's architecture view: regular expressions per language, good
// enough to see which parts of a tree depend on which (not a parser; comments can fool it).

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

// `import x from 'y'`, `import 'y'`, `export { a } from 'y'`, `export * from 'y'`; the gap before
// `from` may span lines (multi-line import lists) but not a statement (no `=`, `(` or `;`), and is
// bounded so a pathological file cannot make the scan quadratic.
const JS_STATIC = /\b(?:import|export)\s+(?:type\s+)?(?:[^'"`;=()]{0,2000}?\s*from\s*)?['"]([^'"\n]+)['"]/g
const JS_CALL = /\b(?:import|require)\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g
const PY_IMPORT = /^[ \t]*import[ \t]+([\w.]+(?:[ \t]*,[ \t]*[\w.]+)*)/gm
const PY_FROM = /^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import\b/gm
const GO_SINGLE = /^[ \t]*import[ \t]+(?:[\w.]+[ \t]+)?"([^"]+)"/gm
const GO_BLOCK = /^[ \t]*import[ \t]*\(([^)]*)\)/gm
const GO_BLOCK_LINE = /^[ \t]*(?:[\w.]+[ \t]+)?"([^"]+)"/gm
const EX_DIRECTIVE = /^[ \t]*(?:alias|import|use|require)[ \t]+([A-Z]\w*(?:\.[A-Z]\w*)*)(?:\.\{([^}]*)\})?/gm
const EX_DEFMODULE = /^[ \t]*defmodule[ \t]+([A-Z][\w.]*)[ \t]+do\b/gm

function captures(text: string, pattern: RegExp): string[] {
  return Array.from(text.matchAll(pattern), (m) => m[1] ?? '').filter(Boolean)
}

function elixirImports(text: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(EX_DIRECTIVE)) {
    const head = m[1] as string
    // `alias MyApp.{Accounts, Repo}` names several modules.
    if (m[2] === undefined) out.push(head)
    else for (const tail of m[2].split(',')) if (tail.trim()) out.push(`${head}.${tail.trim()}`)
  }
  return out
}

/** The import specifiers of one file, as written (resolving them is registry-resolve's job). */
export function extractImports(syntax: ImportSyntax, text: string): string[] {
  switch (syntax) {
    case 'js':
      return [...captures(text, JS_STATIC), ...captures(text, JS_CALL)]
    case 'python':
      return [
        ...captures(text, PY_IMPORT).flatMap((list) => list.split(',').map((s) => s.trim())),
        ...captures(text, PY_FROM),
      ]
    case 'go':
      return [
        ...captures(text, GO_SINGLE),
        ...captures(text, GO_BLOCK).flatMap((block) => captures(block, GO_BLOCK_LINE)),
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
