// Languages by file extension, and which files are tests, for the registry's quality report.
import path from 'node:path'

/** Programming languages: their files count as source for the test-file ratio. */
const CODE: Record<string, string> = {
  '.ts': 'TypeScript',
  '.tsx': 'TypeScript',
  '.mts': 'TypeScript',
  '.cts': 'TypeScript',
  '.js': 'JavaScript',
  '.jsx': 'JavaScript',
  '.mjs': 'JavaScript',
  '.cjs': 'JavaScript',
  '.py': 'Python',
  '.go': 'Go',
  '.ex': 'Elixir',
  '.exs': 'Elixir',
  '.rs': 'Rust',
  '.rb': 'Ruby',
  '.java': 'Java',
  '.kt': 'Kotlin',
  '.c': 'C',
  '.h': 'C',
  '.cc': 'C++',
  '.cpp': 'C++',
  '.hpp': 'C++',
  '.cs': 'C#',
  '.php': 'PHP',
  '.swift': 'Swift',
  '.sh': 'Shell',
  '.sql': 'SQL',
}

/** Text formats counted in the per-language totals but not as source. */
const OTHER: Record<string, string> = {
  '.json': 'JSON',
  '.yaml': 'YAML',
  '.yml': 'YAML',
  '.toml': 'TOML',
  '.md': 'Markdown',
  '.html': 'HTML',
  '.heex': 'HEEx',
  '.eex': 'EEx',
  '.css': 'CSS',
  '.scss': 'CSS',
}

export function languageOf(rel: string): { language: string; code: boolean } | null {
  const ext = path.posix.extname(rel).toLowerCase()
  const code = CODE[ext]
  if (code) return { language: code, code: true }
  const other = OTHER[ext]
  return other ? { language: other, code: false } : null
}

const TEST_NAME = /(\.(test|spec)\.[^.]+$)|(_test\.(go|exs|py)$)|(^test_[^/]*\.py$)/
const TEST_DIR = /(^|\/)(test|tests|__tests__|spec)\//

/** Test files by the usual conventions: *.test.*, *.spec.*, *_test.go/.exs/.py, test_*.py, test/ dirs. */
export function isTestFile(rel: string): boolean {
  return TEST_NAME.test(path.posix.basename(rel)) || TEST_DIR.test(rel)
}
