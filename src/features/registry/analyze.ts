// Runs the registry analyzers over a source tree in one streaming pass: a few files are read at a
// time, each is reduced to small facts (counts, import specifiers, dependencies) and dropped, and
// the module graph is resolved once the whole tree has been seen.
import fs from 'node:fs/promises'
import path from 'node:path'
import { type Dependency, isManifest, parseManifest } from './deps.js'
import type { FileRecord } from './diff.js'
import { elixirModules, extractImports, goModulePath, importSyntaxOf } from './imports.js'
import { languageOf } from './languages.js'
import { countLines, createQualityAccumulator, type Quality } from './quality.js'
import {
  type Architecture,
  buildArchitecture,
  type ImportingFile,
  moduleOf,
  type TreeIndex,
} from './resolve.js'
import { walkTree } from './walk.js'

/** Files larger than this are counted but not read (generated bundles, data dumps). */
export const MAX_TEXT_BYTES = 2 * 1024 * 1024
const SNIFF_BYTES = 8192
const CONCURRENCY = 16

export interface Analysis {
  files: number
  lines: number
  skipped: { binary: number; tooLarge: number }
  architecture: Architecture
  quality: Quality
  dependencies: Dependency[]
  /** Path, language and lines of every analysed file: what the next snapshot is compared with. */
  inventory: FileRecord[]
}

/** The file's text, or why it has none: binary (a NUL byte early on) or too large to count. */
async function readText(abs: string): Promise<{ bytes: number; text: string | null; binary: boolean }> {
  const handle = await fs.open(abs, 'r')
  try {
    const { size } = await handle.stat()
    const head = Buffer.alloc(Math.min(size, SNIFF_BYTES))
    await handle.read(head, 0, head.length, 0)
    if (head.includes(0)) return { bytes: size, text: null, binary: true }
    if (size > MAX_TEXT_BYTES) return { bytes: size, text: null, binary: false }
    return { bytes: size, text: (await handle.readFile()).toString('utf8'), binary: false }
  } finally {
    await handle.close()
  }
}

/**
 * Analyses every file under root; `onFile` is told how many files the walk has handed out so far
 * (analysed, or skipped as binary), for progress.
 */
export async function analyzeTree(
  root: string,
  signal: AbortSignal,
  onFile?: (walked: number) => void,
): Promise<Analysis> {
  const index: TreeIndex = { files: new Set(), dirs: new Set(), elixir: new Map(), goModules: [] }
  const importing: ImportingFile[] = []
  const moduleFiles = new Map<string, number>()
  const quality = createQualityAccumulator()
  const dependencies: Dependency[] = []
  const inventory: FileRecord[] = []
  const totals = { files: 0, lines: 0, binary: 0, tooLarge: 0 }

  async function analyzeFile(rel: string, abs: string): Promise<void> {
    // A file deleted or unreadable mid-walk is simply not part of this snapshot.
    const read = await readText(abs).catch(() => null)
    if (!read || read.binary) {
      if (read?.binary) totals.binary++
      return
    }
    const { text } = read
    const counted = text === null ? null : countLines(text)
    if (text === null) totals.tooLarge++
    totals.files++
    totals.lines += counted?.lines ?? 0
    quality.add({ rel, bytes: read.bytes, lines: counted?.lines ?? null, todos: counted?.todos ?? 0 })
    inventory.push({ path: rel, language: languageOf(rel)?.language ?? null, lines: counted?.lines ?? null })
    index.files.add(rel)
    for (let dir = path.posix.dirname(rel); dir !== '.'; dir = path.posix.dirname(dir)) index.dirs.add(dir)
    moduleFiles.set(moduleOf(rel), (moduleFiles.get(moduleOf(rel)) ?? 0) + 1)
    if (text === null) return
    const syntax = importSyntaxOf(languageOf(rel)?.language ?? '')
    if (syntax) importing.push({ rel, syntax, specs: [...new Set(extractImports(syntax, text))] })
    if (syntax === 'elixir') for (const name of elixirModules(text)) index.elixir.set(name, rel)
    if (path.posix.basename(rel) === 'go.mod') {
      const modulePath = goModulePath(text)
      const dir = path.posix.dirname(rel)
      if (modulePath) index.goModules.push({ dir: dir === '.' ? '' : dir, modulePath })
    }
    if (isManifest(rel)) dependencies.push(...parseManifest(rel, text))
  }

  const walk = walkTree(root, signal)
  let walked = 0
  // Workers share one walk: an async generator hands each next() its own file.
  const worker = async () => {
    for await (const file of walk) {
      signal.throwIfAborted()
      await analyzeFile(file.rel, file.abs)
      onFile?.(++walked)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))

  // Longer module paths first, so a nested go.mod wins over its parent's.
  index.goModules.sort((a, b) => b.modulePath.length - a.modulePath.length)
  importing.sort((a, b) => a.rel.localeCompare(b.rel))
  dependencies.sort((a, b) => a.manifest.localeCompare(b.manifest) || a.name.localeCompare(b.name))
  return {
    files: totals.files,
    lines: totals.lines,
    skipped: { binary: totals.binary, tooLarge: totals.tooLarge },
    architecture: buildArchitecture(index, importing, moduleFiles),
    quality: quality.result(),
    dependencies,
    inventory: inventory.sort((a, b) => (a.path < b.path ? -1 : 1)),
  }
}
