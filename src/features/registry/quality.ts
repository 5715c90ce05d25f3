// Code-quality figures for the registry: files and lines per language, the largest files,
// TODO/FIXME markers and the test-file ratio. Accumulated file by file, so memory stays flat
// however large the tree.
import { isTestFile, languageOf } from './languages.js'

const LARGEST = 10

export interface FileFacts {
  rel: string
  bytes: number
  /** Non-blank lines; null when the file was too large to count. */
  lines: number | null
  todos: number
}

export interface Quality {
  languages: Array<{ language: string; files: number; lines: number }>
  largestFiles: Array<{ path: string; language: string | null; bytes: number; lines: number | null }>
  todoCount: number
  testFiles: number
  sourceFiles: number
  /** Test files per non-test source file; null with no source files. */
  testRatio: number | null
}

export function countLines(text: string): { lines: number; todos: number } {
  let lines = 0
  for (const line of text.split('\n')) if (line.trim() !== '') lines++
  const todos = text.match(/\b(TODO|FIXME)\b/g)?.length ?? 0
  return { lines, todos }
}

export function createQualityAccumulator() {
  const languages = new Map<string, { files: number; lines: number }>()
  let largest: Quality['largestFiles'] = []
  let todoCount = 0
  let testFiles = 0
  let sourceFiles = 0

  return {
    add(file: FileFacts): void {
      const lang = languageOf(file.rel)
      todoCount += file.todos
      if (lang) {
        const entry = languages.get(lang.language) ?? { files: 0, lines: 0 }
        entry.files++
        entry.lines += file.lines ?? 0
        languages.set(lang.language, entry)
        if (lang.code && isTestFile(file.rel)) testFiles++
        else if (lang.code) sourceFiles++
      }
      // Kept short as it goes: a sort of ten items per file, never a list of all files.
      const smallest = largest[largest.length - 1]
      if (largest.length < LARGEST || (smallest && file.bytes > smallest.bytes)) {
        const item = {
          path: file.rel,
          language: lang?.language ?? null,
          bytes: file.bytes,
          lines: file.lines,
        }
        largest = [...largest, item]
          .sort((a, b) => b.bytes - a.bytes || a.path.localeCompare(b.path))
          .slice(0, LARGEST)
      }
    },

    result(): Quality {
      return {
        languages: [...languages]
          .map(([language, v]) => ({ language, ...v }))
          .sort((a, b) => b.lines - a.lines || a.language.localeCompare(b.language)),
        largestFiles: largest,
        todoCount,
        testFiles,
        sourceFiles,
        testRatio: sourceFiles === 0 ? null : Math.round((testFiles / sourceFiles) * 10_000) / 10_000,
      }
    },
  }
}
