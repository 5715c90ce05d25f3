// Resolves import specifiers to files or directories of the tree, then to top-level modules, and
// builds the module graph: a module is a top-level folder (or a top-level file) of the tree.
import path from 'node:path'
import { type Edge, findCycles } from './graph.js'
import type { ImportSyntax } from './imports.js'

export interface ImportingFile {
  rel: string
  syntax: ImportSyntax
  specs: string[]
}

export interface TreeIndex {
  files: Set<string>
  /** Every directory that holds a file, relative, with forward slashes. */
  dirs: Set<string>
  /** Elixir module name → defining file. */
  elixir: Map<string, string>
  /** go.mod directories and the module paths they declare. */
  goModules: Array<{ dir: string; modulePath: string }>
}

export interface Architecture {
  modules: Array<{ name: string; files: number }>
  edges: Edge[]
  cycles: string[][]
  /** Imports that pointed at nothing in the tree (external packages, the standard library). */
  externalImports: number
}

export const moduleOf = (rel: string) => rel.split('/')[0] as string

const JS_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs', '.json']

function resolveJs(index: TreeIndex, from: string, spec: string): string | null {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return null
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec))
  // TypeScript ESM imports name the compiled file: './a.js' means './a.ts'.
  const stem = target.replace(/\.(m|c)?jsx?$/, '')
  const candidates = [
    target,
    ...JS_EXTENSIONS.map((ext) => stem + ext),
    ...JS_EXTENSIONS.map((ext) => `${target}/index${ext}`),
  ]
  return candidates.find((c) => index.files.has(c)) ?? (index.dirs.has(target) ? target : null)
}

const pythonFile = (index: TreeIndex, stem: string) =>
  [`${stem}.py`, `${stem}/__init__.py`].find((c) => index.files.has(c)) ?? null

/**
 * The deepest `base/a/b/c` module that `a.b.c` names: `import a.b.c` may name a module, or a name
 * inside a shorter one. Walked down from the top, part by part and only while the tree has such a
 * directory: a line of `import a.a.a…` names a million candidates, each as long as the line.
 */
function deepestPythonModule(index: TreeIndex, base: string, dotted: string): string | null {
  let found: string | null = null
  let stem = base
  for (let at = 0; at < dotted.length; ) {
    const dot = dotted.indexOf('.', at)
    const part = dotted.slice(at, dot < 0 ? dotted.length : dot)
    at = dot < 0 ? dotted.length : dot + 1
    if (part === '') continue
    if (stem !== '' && !index.dirs.has(stem)) break
    stem = stem === '' ? part : `${stem}/${part}`
    found = pythonFile(index, stem) ?? found
  }
  return found
}

function resolvePython(index: TreeIndex, from: string, spec: string): string | null {
  const dots = /^\.*/.exec(spec)?.[0].length ?? 0
  let bases = ['', 'src', 'lib']
  if (dots > 0) {
    let dir = path.posix.dirname(from)
    for (let i = 1; i < dots && dir !== '.'; i++) dir = path.posix.dirname(dir)
    bases = [dir === '.' ? '' : dir]
  }
  for (const base of bases) {
    const found = deepestPythonModule(index, base, spec.slice(dots))
    if (found) return found
    // `from . import x`, `from .. import y`: the package itself.
    if (dots > 0) return pythonFile(index, base) ?? (index.dirs.has(base) ? base : null)
  }
  return null
}

function resolveGo(index: TreeIndex, spec: string): string | null {
  for (const { dir, modulePath } of index.goModules) {
    if (spec !== modulePath && !spec.startsWith(`${modulePath}/`)) continue
    const target = [dir, spec.slice(modulePath.length + 1)].filter(Boolean).join('/')
    if (index.dirs.has(target)) return target
  }
  return null
}

export function resolveImport(index: TreeIndex, file: ImportingFile, spec: string): string | null {
  switch (file.syntax) {
    case 'js':
      return resolveJs(index, file.rel, spec)
    case 'python':
      return resolvePython(index, file.rel, spec)
    case 'go':
      return resolveGo(index, spec)
    case 'elixir':
      return index.elixir.get(spec) ?? null
  }
}

export function buildArchitecture(
  index: TreeIndex,
  importing: ImportingFile[],
  moduleFiles: Map<string, number>,
): Architecture {
  const counts = new Map<string, number>()
  let externalImports = 0
  for (const file of importing) {
    for (const spec of file.specs) {
      const target = resolveImport(index, file, spec)
      if (target === null) {
        externalImports++
        continue
      }
      const from = moduleOf(file.rel)
      const to = moduleOf(target)
      if (from === to) continue
      const key = `${from}\n${to}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
  }
  const edges = [...counts]
    .map(([key, count]) => {
      const [from, to] = key.split('\n') as [string, string]
      return { from, to, count }
    })
    .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to))
  const names = [...moduleFiles.keys()].sort()
  return {
    modules: names.map((name) => ({ name, files: moduleFiles.get(name) ?? 0 })),
    edges,
    cycles: findCycles(names, edges),
    externalImports,
  }
}
