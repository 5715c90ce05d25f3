// What changed between two registry snapshots: per-language file and line counts, modules, import
// edges, cycles and declared dependencies.
import type { Dependency } from './deps.js'
import type { Quality } from './quality.js'
import type { Architecture } from './resolve.js'

export interface FileRecord {
  path: string
  language: string | null
  lines: number | null
}

export interface SnapshotParts {
  architecture: Architecture
  quality: Quality
  dependencies: Dependency[]
  /** Absent for a snapshot whose file list is gone: the diff then compares counts only. */
  inventory?: FileRecord[]
}

export interface LanguageChange {
  language: string
  filesAdded: number
  filesRemoved: number
  linesAdded: number
  linesRemoved: number
}

export interface SnapshotDiff {
  previousId: number
  /** Files added and removed per language; lines added and removed, counting a changed file's net change. */
  languages: LanguageChange[]
  modules: { added: string[]; removed: string[] }
  edges: { added: Array<{ from: string; to: string }>; removed: Array<{ from: string; to: string }> }
  cycles: { appeared: string[][]; resolved: string[][] }
  dependencies: {
    added: Dependency[]
    removed: Dependency[]
    changed: Array<{
      manifest: string
      ecosystem: string
      name: string
      from: string | null
      to: string | null
    }>
  }
}

function setDiff<T>(before: T[], after: T[], key: (item: T) => string): { added: T[]; removed: T[] } {
  const beforeKeys = new Set(before.map(key))
  const afterKeys = new Set(after.map(key))
  return {
    added: after.filter((item) => !beforeKeys.has(key(item))),
    removed: before.filter((item) => !afterKeys.has(key(item))),
  }
}

function languageChanges(before: Quality, after: Quality): LanguageChange[] {
  const names = [...new Set([...before.languages, ...after.languages].map((l) => l.language))].sort()
  const find = (q: Quality, name: string) =>
    q.languages.find((l) => l.language === name) ?? { files: 0, lines: 0 }
  return names
    .map((language) => {
      const [b, a] = [find(before, language), find(after, language)]
      return {
        language,
        filesAdded: Math.max(0, a.files - b.files),
        filesRemoved: Math.max(0, b.files - a.files),
        linesAdded: Math.max(0, a.lines - b.lines),
        linesRemoved: Math.max(0, b.lines - a.lines),
      }
    })
    .filter((c) => c.filesAdded + c.filesRemoved + c.linesAdded + c.linesRemoved > 0)
}

/** File by file: a new file adds its lines, a removed one removes them, an edited one its net change. */
function fileChanges(before: FileRecord[], after: FileRecord[]): LanguageChange[] {
  const changes = new Map<string, LanguageChange>()
  const change = (language: string) => {
    const found = changes.get(language) ?? {
      language,
      filesAdded: 0,
      filesRemoved: 0,
      linesAdded: 0,
      linesRemoved: 0,
    }
    changes.set(language, found)
    return found
  }
  const added = (file: FileRecord) => {
    if (!file.language) return
    change(file.language).filesAdded++
    change(file.language).linesAdded += file.lines ?? 0
  }
  const removed = (file: FileRecord) => {
    if (!file.language) return
    change(file.language).filesRemoved++
    change(file.language).linesRemoved += file.lines ?? 0
  }
  const old = new Map(before.map((f) => [f.path, f]))
  for (const file of after) {
    const was = old.get(file.path)
    old.delete(file.path)
    if (!was) added(file)
    else if (was.language !== file.language) {
      removed(was)
      added(file)
    } else if (file.language) {
      const delta = (file.lines ?? 0) - (was.lines ?? 0)
      if (delta > 0) change(file.language).linesAdded += delta
      if (delta < 0) change(file.language).linesRemoved -= delta
    }
  }
  for (const file of old.values()) removed(file)
  return [...changes.values()]
    .filter((c) => c.filesAdded + c.filesRemoved + c.linesAdded + c.linesRemoved > 0)
    .sort((a, b) => (a.language < b.language ? -1 : 1))
}

function dependencyChanges(before: Dependency[], after: Dependency[]): SnapshotDiff['dependencies'] {
  const key = (d: Dependency) => `${d.manifest}\n${d.ecosystem}\n${d.name}\n${d.kind}`
  const { added, removed } = setDiff(before, after, key)
  const old = new Map(before.map((d) => [key(d), d]))
  const changed = after
    .filter((d) => old.has(key(d)) && old.get(key(d))?.version !== d.version)
    .map((d) => ({
      manifest: d.manifest,
      ecosystem: d.ecosystem,
      name: d.name,
      from: old.get(key(d))?.version ?? null,
      to: d.version,
    }))
  return { added, removed, changed }
}

export function diffSnapshots(previousId: number, before: SnapshotParts, after: SnapshotParts): SnapshotDiff {
  const edge = (e: { from: string; to: string }) => ({ from: e.from, to: e.to })
  const edges = setDiff(before.architecture.edges, after.architecture.edges, (e) => `${e.from}\n${e.to}`)
  const cycles = setDiff(before.architecture.cycles, after.architecture.cycles, (c) => c.join('\n'))
  const modules = setDiff(
    before.architecture.modules.map((m) => m.name),
    after.architecture.modules.map((m) => m.name),
    (m) => m,
  )
  return {
    previousId,
    languages:
      before.inventory && after.inventory
        ? fileChanges(before.inventory, after.inventory)
        : languageChanges(before.quality, after.quality),
    modules,
    edges: { added: edges.added.map(edge), removed: edges.removed.map(edge) },
    cycles: { appeared: cycles.added, resolved: cycles.removed },
    dependencies: dependencyChanges(before.dependencies, after.dependencies),
  }
}

/** A few numbers for the run's result and the snapshot list. */
export function diffSummary(diff: SnapshotDiff | null) {
  if (!diff) return null
  return {
    previousId: diff.previousId,
    filesAdded: diff.languages.reduce((n, l) => n + l.filesAdded, 0),
    filesRemoved: diff.languages.reduce((n, l) => n + l.filesRemoved, 0),
    modulesAdded: diff.modules.added.length,
    modulesRemoved: diff.modules.removed.length,
    edgesAdded: diff.edges.added.length,
    edgesRemoved: diff.edges.removed.length,
    cyclesAppeared: diff.cycles.appeared.length,
    cyclesResolved: diff.cycles.resolved.length,
    dependenciesAdded: diff.dependencies.added.length,
    dependenciesRemoved: diff.dependencies.removed.length,
    dependenciesChanged: diff.dependencies.changed.length,
  }
}
