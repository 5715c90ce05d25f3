// The import rules of src/, checked by lint: no cycles, and dependencies point down the layers
// lib → config → db → http → engine → monitoring → features → app (a file imports its own layer or
// those before it), and no feature imports another. Relative imports only: packages are leaves.
import fs from 'node:fs'
import path from 'node:path'

const SRC = path.resolve(import.meta.dirname, '../src')
const LAYERS = ['lib', 'config', 'db', 'http', 'engine', 'monitoring', 'features', 'app'] as const
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(full)
    return entry.name.endsWith('.ts') ? [full] : []
  })
}

/** Layer index and, for features, which feature. */
function placeOf(file: string): { layer: number; feature?: string } {
  const [top, second] = path.relative(SRC, file).split(path.sep)
  if (top === 'config.ts') return { layer: LAYERS.indexOf('config') }
  if (top === 'features') return { layer: LAYERS.indexOf('features'), feature: second }
  const layer = LAYERS.indexOf(top as (typeof LAYERS)[number])
  return { layer: layer === -1 ? LAYERS.indexOf('app') : layer }
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  return [...text.matchAll(IMPORT)].map((m) => {
    const target = path.resolve(path.dirname(file), (m[1] ?? m[2]) as string)
    return target.replace(/\.js$/, '.ts')
  })
}

const rel = (file: string) => path.relative(SRC, file)
const graph = new Map(sourceFiles(SRC).map((file) => [file, importsOf(file)]))
const problems: string[] = []

for (const [file, targets] of graph) {
  const from = placeOf(file)
  for (const target of targets) {
    if (!graph.has(target)) {
      problems.push(`${rel(file)} imports ${rel(target)}, which does not exist`)
      continue
    }
    const to = placeOf(target)
    if (to.layer > from.layer)
      problems.push(
        `${rel(file)} (${LAYERS[from.layer]}) imports ${rel(target)} (${LAYERS[to.layer]}), a layer above it`,
      )
    else if (from.feature && to.feature && from.feature !== to.feature)
      problems.push(`${rel(file)} imports ${rel(target)}: features do not import each other`)
  }
}

// Cycles: a depth-first walk; a back edge closes one.
const state = new Map<string, 'open' | 'done'>()
const stack: string[] = []
function visit(file: string): void {
  state.set(file, 'open')
  stack.push(file)
  for (const target of graph.get(file) ?? []) {
    if (!graph.has(target)) continue
    if (state.get(target) === 'open') {
      const cycle = stack.slice(stack.indexOf(target)).concat(target)
      problems.push(`import cycle: ${cycle.map(rel).join(' → ')}`)
    } else if (!state.has(target)) visit(target)
  }
  stack.pop()
  state.set(file, 'done')
}
for (const file of graph.keys()) if (!state.has(file)) visit(file)

if (problems.length > 0) {
  console.error(problems.join('\n'))
  process.exit(1)
}
console.log(`imports: ${graph.size} files, no cycles, layers respected`)
