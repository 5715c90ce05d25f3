// Walks a source tree for registry-sync: iteratively (no recursion, so depth costs no stack), one
// directory open at a time, honouring .gitignore files at every level and never entering
// dependency or build-output directories. Yields file paths; reading them is the caller's job.
import fs from 'node:fs/promises'
import path from 'node:path'
import ignore, { type Ignore } from 'ignore'

/** Directories skipped wherever they are, ignored or not: dependencies, VCS data, build output. */
export const SKIPPED_DIRS = new Set([
  'node_modules',
  '.git',
  '.hg',
  '.svn',
  'dist',
  'build',
  'coverage',
  '.tap',
  'target',
  '_build',
  'deps',
  '__pycache__',
  '.venv',
])

export interface WalkedFile {
  /** Relative to the root, with forward slashes. */
  rel: string
  abs: string
}

interface Matcher {
  /** The directory of the .gitignore, relative to the root ('' for the root). */
  base: string
  rules: Ignore
}

interface PendingDir {
  rel: string
  matchers: Matcher[]
}

/**
 * Git semantics: rules of deeper .gitignore files win over shallower ones, and a path is tested
 * against each file relative to that file's directory. Directories are tested with a trailing
 * slash so `build/`-style rules match them.
 */
function isIgnored(matchers: Matcher[], rel: string, isDir: boolean): boolean {
  let ignored = false
  for (const { base, rules } of matchers) {
    const local = base === '' ? rel : rel.slice(base.length + 1)
    const result = rules.test(isDir ? `${local}/` : local)
    if (result.ignored) ignored = true
    else if (result.unignored) ignored = false
  }
  return ignored
}

async function readMatcher(root: string, rel: string): Promise<Matcher | null> {
  const text = await fs.readFile(path.join(root, rel, '.gitignore'), 'utf8').catch(() => null)
  return text === null ? null : { base: rel, rules: ignore().add(text) }
}

/** Every non-ignored regular file under root. Symbolic links are not followed. */
export async function* walkTree(root: string, signal: AbortSignal): AsyncGenerator<WalkedFile> {
  const stack: PendingDir[] = [{ rel: '', matchers: [] }]
  for (let dir = stack.pop(); dir; dir = stack.pop()) {
    signal.throwIfAborted()
    const own = await readMatcher(root, dir.rel)
    const matchers = own ? [...dir.matchers, own] : dir.matchers
    const entries = await fs.readdir(path.join(root, dir.rel), { withFileTypes: true }).catch(() => [])
    // Sorted so the walk, and so every list built from it, is the same from run to run.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const subdirs: PendingDir[] = []
    for (const entry of entries) {
      const rel = dir.rel === '' ? entry.name : `${dir.rel}/${entry.name}`
      if (entry.isDirectory()) {
        if (SKIPPED_DIRS.has(entry.name) || isIgnored(matchers, rel, true)) continue
        subdirs.push({ rel, matchers })
      } else if (entry.isFile() && !isIgnored(matchers, rel, false)) {
        yield { rel, abs: path.join(root, rel) }
      }
    }
    stack.push(...subdirs.reverse())
  }
}
