// Declared dependencies for the registry: package.json, mix.exs, Cargo.toml, go.mod,
// requirements.txt and pyproject.toml, wherever they are in the (non-ignored) tree.
// Manifests are read from the tree like any source file, so every scan here is linear in the file.
import path from 'node:path'
import { closedSpans, stripLineComment } from './scan.js'
import { tomlEntries, tomlStrings, tomlVersion } from './toml.js'

export interface Dependency {
  manifest: string
  ecosystem: 'npm' | 'hex' | 'cargo' | 'go' | 'pypi'
  name: string
  /** The version spec as declared (`^1.2.0`, `~> 1.7`, `>=2,<3`); null when none (path, git). */
  version: string | null
  kind: 'prod' | 'dev' | 'build'
}

type Parser = (text: string) => Array<Omit<Dependency, 'manifest' | 'ecosystem'>>

function packageJson(text: string): ReturnType<Parser> {
  const pkg = JSON.parse(text) as Record<string, unknown>
  const section = (key: string, kind: Dependency['kind']) =>
    Object.entries((pkg[key] ?? {}) as Record<string, unknown>).map(([name, version]) => ({
      name,
      version: typeof version === 'string' ? version : null,
      kind,
    }))
  return [...section('dependencies', 'prod'), ...section('devDependencies', 'dev')]
}

/** The `[...]` list returned by `defp deps`, found by bracket matching from its first `[`. */
function mixDepsList(text: string): string {
  const start = text.indexOf('[', text.search(/\bdefp?\s+deps\b/))
  if (text.search(/\bdefp?\s+deps\b/) < 0 || start < 0) return ''
  let depth = 0
  for (let i = start; i < text.length; i++) {
    if (text[i] === '[') depth++
    else if (text[i] === ']' && --depth === 0) return text.slice(start + 1, i)
  }
  return text.slice(start + 1)
}

function mixExs(text: string): ReturnType<Parser> {
  const list = mixDepsList(text)
  // Up to the last `}`: past it every `{` (an unclosed tuple) would scan to the end of the list.
  const tuples = list
    .slice(0, list.lastIndexOf('}') + 1)
    .matchAll(/\{\s*:(\w+)\s*,\s*(?:"([^"]*)")?([^}]*)\}/g)
  return Array.from(tuples, (m) => ({
    name: m[1] as string,
    version: m[2] ?? null,
    kind: /\bonly:/.test(m[3] ?? '') && !/:prod\b/.test(m[3] ?? '') ? 'dev' : 'prod',
  }))
}

/** What a Cargo table holds: a list of dependencies, or one (`[dependencies.serde]`). */
function cargoTable(table: string) {
  const kind: Dependency['kind'] = /(^|\.)dev-dependencies$/.test(table)
    ? 'dev'
    : /(^|\.)build-dependencies$/.test(table)
      ? 'build'
      : 'prod'
  const list = /(^|\.)(dev-|build-)?dependencies$/.test(table)
  const named = /(?:^|\.)(dev-|build-)?dependencies\.([\w-]+)$/.exec(table)?.[2] ?? null
  return { table, kind, list, named }
}

function cargoToml(text: string): ReturnType<Parser> {
  const out: ReturnType<Parser> = []
  // Per table, not per key: a long table name tested again for each of many keys is quadratic.
  let current = cargoTable('')
  for (const { table, key, value } of tomlEntries(text)) {
    if (table !== current.table) current = cargoTable(table)
    const { kind, list, named } = current
    if (list) out.push({ name: key, version: tomlVersion(value), kind })
    // `[dependencies.serde]` tables: the version is a key of its own.
    if (named !== null && key === 'version') out.push({ name: named, version: tomlVersion(value), kind })
  }
  return out
}

function goMod(text: string): ReturnType<Parser> {
  const lines = [
    ...Array.from(text.matchAll(/^require\s+([^\s(]+)\s+(\S+)/gm), (m) => `${m[1]} ${m[2]}`),
    ...closedSpans(text, /^require\s*\(/gm, ')').flatMap((block) => block.split('\n')),
  ]
  return lines
    .map((line) => /^\s*([^\s/][^\s]*)\s+(v\S+)/.exec(stripLineComment(line, '//')))
    .filter((m) => m !== null)
    .map((m) => ({ name: m[1] as string, version: m[2] as string, kind: 'prod' as const }))
}

/** One PEP 508 requirement: `name[extras] spec ; markers`. */
function pep508(line: string, kind: Dependency['kind']) {
  const m = /^\s*([A-Za-z0-9][\w.-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)/.exec(stripLineComment(line, '#'))
  if (!m) return null
  return { name: m[1] as string, version: (m[2] as string).trim() || null, kind }
}

function requirementsTxt(text: string): ReturnType<Parser> {
  return text
    .split('\n')
    .filter((line) => !/^\s*(-|#|$)/.test(line))
    .map((line) => pep508(line, 'prod'))
    .filter((d) => d !== null)
}

function pyprojectToml(text: string): ReturnType<Parser> {
  const out: ReturnType<Parser> = []
  const poetryTable = (table: string) =>
    /^tool\.poetry\.(dependencies|dev-dependencies|group\.[\w-]+\.dependencies)$/.exec(table)?.[1] ?? null
  // Per table, not per key (as in cargoToml).
  let current = { table: '', poetry: poetryTable('') }
  for (const { table, key, value } of tomlEntries(text)) {
    if (table !== current.table) current = { table, poetry: poetryTable(table) }
    if (table === 'project' && key === 'dependencies') {
      for (const req of tomlStrings(value)) out.push(...[pep508(req, 'prod')].filter((d) => d !== null))
    }
    if (current.poetry !== null && key !== 'python') {
      out.push({
        name: key,
        version: tomlVersion(value),
        kind: current.poetry === 'dependencies' ? 'prod' : 'dev',
      })
    }
  }
  return out
}

const MANIFESTS: Array<[RegExp, Dependency['ecosystem'], Parser]> = [
  [/^package\.json$/, 'npm', packageJson],
  [/^mix\.exs$/, 'hex', mixExs],
  [/^Cargo\.toml$/, 'cargo', cargoToml],
  [/^go\.mod$/, 'go', goMod],
  [/^requirements(-[\w-]+)?\.txt$/, 'pypi', requirementsTxt],
  [/^pyproject\.toml$/, 'pypi', pyprojectToml],
]

export function isManifest(rel: string): boolean {
  const base = path.posix.basename(rel)
  return MANIFESTS.some(([pattern]) => pattern.test(base))
}

/** The dependencies a manifest declares; a manifest that does not parse declares none. */
export function parseManifest(rel: string, text: string): Dependency[] {
  const base = path.posix.basename(rel)
  const found = MANIFESTS.find(([pattern]) => pattern.test(base))
  if (!found) return []
  const [, ecosystem, parse] = found
  try {
    return parse(text).map((d) => ({ manifest: rel, ecosystem, ...d }))
  } catch {
    return []
  }
}
