// The registry's analysers on hostile files: each input here made a regular expression of theirs
// backtrack quadratically (or worse) and stall the event loop for minutes at 2 MiB, the largest
// file the registry reads. Every analyser must now take time linear in its input, and the JS import
// scanner that replaced the worst regex must still find what that regex found.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { analyzeTree, MAX_TEXT_BYTES } from '../src/features/registry/analyze.js'
import { parseManifest } from '../src/features/registry/deps.js'
import { extractImports } from '../src/features/registry/imports.js'
import { jsStaticImports } from '../src/features/registry/js-imports.js'
import { resolveImport, type TreeIndex } from '../src/features/registry/resolve.js'

/** `unit` repeated between `head` and `tail`, `size` characters (and bytes) in all. */
function fill(size: number, unit: string, head = '', tail = ''): string {
  const body = size - head.length - tail.length
  return head + unit.repeat(Math.ceil(body / unit.length)).slice(0, body) + tail
}

const pythonTree: TreeIndex = {
  files: new Set(['a/a.py']),
  dirs: new Set(['a']),
  elixir: new Map(),
  goModules: [],
}

interface Hostile {
  name: string
  /** Where the file goes in the tree analyzeTree reads. */
  file: string
  text: (size: number) => string
  analyse: (text: string) => unknown
}

const js = (text: string) => extractImports('js', text)
const manifest = (file: string) => (text: string) => parseManifest(file, text)

const HOSTILE: Hostile[] = [
  { name: 'import then whitespace', file: 'js/blank.ts', text: (n) => fill(n, ' ', 'import'), analyse: js },
  { name: 'import keywords, no from', file: 'js/keywords.ts', text: (n) => fill(n, 'import '), analyse: js },
  {
    name: 'from then whitespace',
    file: 'js/from.ts',
    text: (n) => fill(n, ' ', 'import {a} from'),
    analyse: js,
  },
  {
    name: 'Python from with dots',
    file: 'py/dots.py',
    text: (n) => fill(n, '.', 'from ', ' '),
    analyse: (text) => extractImports('python', text),
  },
  {
    name: 'Python from then whitespace',
    file: 'py/blank.py',
    text: (n) => fill(n, ' ', 'from', 'x'),
    analyse: (text) => extractImports('python', text),
  },
  {
    name: 'Python module path a.a.a…',
    file: 'py/dotted.py',
    text: (n) => fill(n, '.a', 'import a'),
    analyse: (text) =>
      extractImports('python', text).map((spec) =>
        resolveImport(pythonTree, { rel: 'm.py', syntax: 'python', specs: [] }, spec),
      ),
  },
  {
    name: 'Go import blocks that never close',
    file: 'go/blocks.go',
    text: (n) => fill(n, 'import (\n'),
    analyse: (text) => extractImports('go', text),
  },
  {
    name: 'Elixir alias lists that never close',
    file: 'ex/alias.ex',
    text: (n) => fill(n, 'alias A.{\n'),
    analyse: (text) => extractImports('elixir', text),
  },
  {
    name: 'mix.exs tuples that never close',
    file: 'mix/mix.exs',
    text: (n) => fill(n, '{ :a, ', 'defp deps do\n['),
    analyse: manifest('mix.exs'),
  },
  {
    name: 'go.mod require blocks that never close',
    file: 'gomod-blocks/go.mod',
    text: (n) => fill(n, 'require (\n'),
    analyse: manifest('go.mod'),
  },
  {
    name: 'go.mod comment markers before a carriage return',
    file: 'gomod-comments/go.mod',
    text: (n) => fill(n, '//', 'require (\na', '\rx\n)'),
    analyse: manifest('go.mod'),
  },
  {
    name: 'requirements.txt comment markers before a carriage return',
    file: 'requirements.txt',
    text: (n) => fill(n, '#', 'a', '\rx'),
    analyse: manifest('requirements.txt'),
  },
  {
    name: 'Cargo.toml whitespace before a carriage return',
    file: 'cargo-blank/Cargo.toml',
    text: (n) => fill(n, ' ', 'a=', '\rx\ry'),
    analyse: manifest('Cargo.toml'),
  },
  {
    name: 'Cargo.toml array that never closes',
    file: 'cargo-array/Cargo.toml',
    text: (n) => fill(n, '\n[[[[[[[[[[[[[[[', '[dependencies]\na = ['),
    analyse: manifest('Cargo.toml'),
  },
  {
    name: 'pyproject.toml long table name, many keys',
    file: 'pyproject.toml',
    text: (n) =>
      fill(n, `python = "${'x'.repeat(50)}"\n`, `[tool.poetry.group.${'a'.repeat(n / 2)}.dependencies]\n`),
    analyse: manifest('pyproject.toml'),
  },
]

/** A second at the largest size, in proportion below it, and a floor for timer and GC noise. */
const budgetMs = (size: number) => 100 + (1000 * size) / MAX_TEXT_BYTES

/** The best of three runs, or of fewer if one is within `budget`: one slow run may be a busy machine. */
function bestMs(analyse: () => unknown, budget: number): number {
  let best = Number.POSITIVE_INFINITY
  for (let run = 0; run < 3 && best > budget; run++) {
    const started = performance.now()
    analyse()
    best = Math.min(best, performance.now() - started)
  }
  return best
}

t.test('each analyser takes time linear in a hostile file, up to the largest file read', async (t) => {
  for (const hostile of HOSTILE) {
    // Doubling from 1 KiB, so a quadratic analyser fails at a small size in moments rather than
    // stalling this test for hours at 2 MiB.
    let size = 1024
    let ms = 0
    for (; size <= MAX_TEXT_BYTES; size *= 2) {
      const text = hostile.text(size)
      ms = bestMs(() => hostile.analyse(text), budgetMs(size))
      if (ms > budgetMs(size)) break
    }
    const at = Math.min(size, MAX_TEXT_BYTES)
    t.ok(
      ms <= budgetMs(at),
      `${hostile.name}: ${at} bytes in ${Math.round(ms)} ms (budget ${Math.round(budgetMs(at))})`,
    )
  }
})

// The regex jsStaticImports replaced. What it found, on inputs small enough for it, the scanner
// must find; the 2000 is its bound on the text between keyword and `from`.
const JS_STATIC_REGEX =
  /\b(?:import|export)\s+(?:type\s+)?(?:[^'"`;=()]{0,2000}?\s*from\s*)?['"]([^'"\n]+)['"]/g
const regexImports = (text: string) => Array.from(text.matchAll(JS_STATIC_REGEX), (m) => m[1] as string)

t.test('the JS import scanner finds what the regex it replaced found', async (t) => {
  // mulberry32: a fixed seed, so a failure here can be replayed.
  let seed = 20261129
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const pick = (items: string[]) => items[Math.floor(random() * items.length)] as string
  const some = (items: string[], most: number) =>
    Array.from({ length: Math.floor(random() * (most + 1)) }, () => pick(items)).join('')
  // Statement-shaped pieces, each part of them sometimes wrong, between bits of other code.
  const piece = () =>
    random() < 0.3
      ? pick([' ', '\n', ';', '=', '(', ')', "'", '"', 'x', 'from', "'./n'", '//', '`'])
      : pick(['import', 'import', 'export', 'ximport', '$import', 'require']) +
        pick(['', ' ', ' ', '\n', '  \t', '\r\n', '\u00a0']) +
        pick(['', '', 'type ', 'type', 'typeof ', 'type\n']) +
        some(
          ['{', 'a', ',', ' ', '\n', '}', '*', 'as', 'from', '=', ';', '(', 'fromage', 'type', "'", '`'],
          4,
        ) +
        pick(['', 'from', ' from ', 'from\n', ' from  ', '(']) +
        pick(["'", '"', '`', '', ' ']) +
        pick(['./x', '', 'a\nb', 'y', 'from', "x'"]) +
        pick(["'", '"', '', ')', "')"])
  const texts = Array.from(
    { length: 3000 },
    () => some([piece()], 1) + Array.from({ length: 4 }, piece).join(''),
  )
  // Around the bound: gaps of 1995 to 2005 characters, with whitespace and `type` on either side.
  for (let gap = 1995; gap <= 2005; gap++) {
    for (const [before, after] of [
      ['import ', ' '],
      ['import\n\n\n', '\n  '],
      ['import type ', ''],
      ['export  type\t', '   '],
    ])
      texts.push(`${before}{${'a'.repeat(gap - 2)}}${after}from './x.js'`)
  }
  let found = 0
  for (const text of texts) {
    const expected = regexImports(text)
    found += expected.length
    if (JSON.stringify(jsStaticImports(text)) !== JSON.stringify(expected)) {
      t.same(jsStaticImports(text), expected, JSON.stringify(text))
      return
    }
  }
  t.ok(found > 500, `the inputs held imports to find (${found})`)
  t.pass(`${texts.length} inputs, the same specifiers`)
})

t.test('a tree of hostile files, each as large as the registry reads, is analysed in seconds', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-registry-redos-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const put = async (rel: string, text: string) => {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true })
    await fs.writeFile(path.join(dir, rel), text)
  }
  for (const hostile of HOSTILE) await put(hostile.file, hostile.text(MAX_TEXT_BYTES))
  await put('a/a.py', 'x = 1\n')
  // One byte over the cap: counted, never read.
  await put('js/over.ts', fill(MAX_TEXT_BYTES + 1, ' ', 'import'))

  const started = performance.now()
  const analysis = await analyzeTree(dir, new AbortController().signal)
  const elapsed = performance.now() - started
  t.equal(analysis.files, HOSTILE.length + 2)
  t.same(analysis.skipped, { binary: 0, tooLarge: 1 }, 'every hostile file was read')
  t.ok(
    analysis.architecture.edges.some((e) => e.from === 'py' && e.to === 'a'),
    'the long module path still resolves',
  )
  t.ok(elapsed < 1000 * HOSTILE.length, `analysed in ${Math.round(elapsed)} ms`)
})
