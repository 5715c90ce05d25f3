import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { analyzeTree } from '../src/features/registry/analyze.js'
import { parseManifest } from '../src/features/registry/deps.js'
import { diffSnapshots, type SnapshotParts } from '../src/features/registry/diff.js'
import { findCycles } from '../src/features/registry/graph.js'
import { extractImports } from '../src/features/registry/imports.js'
import { isTestFile } from '../src/features/registry/languages.js'
import { walkTree } from '../src/features/registry/walk.js'

async function tree(t: Test, files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-registry-unit-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  for (const [rel, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true })
    await fs.writeFile(path.join(dir, rel), text)
  }
  return dir
}

async function walked(root: string, signal = new AbortController().signal): Promise<string[]> {
  const out: string[] = []
  for await (const file of walkTree(root, signal)) out.push(file.rel)
  return out.sort()
}

t.test('the walk honours nested .gitignore files the way git does', async (t) => {
  const dir = await tree(t, {
    '.gitignore': '*.tmp\n/secret\nlogs/\n',
    'a.js': '',
    'x.tmp': '',
    'secret/key.js': '',
    'src/secret/ok.js': '',
    'src/logs/l.js': '',
    'src/.gitignore': '!keep.tmp\ngen/\n',
    'src/keep.tmp': '',
    'src/drop.tmp': '',
    'src/gen/g.js': '',
    'target/debug/app.rs': '',
    'deps/phoenix/mix.exs': '',
    '.git/HEAD': '',
  })
  t.same(await walked(dir), ['.gitignore', 'a.js', 'src/.gitignore', 'src/keep.tmp', 'src/secret/ok.js'])
})

t.test('the walk stops when its signal aborts', async (t) => {
  const dir = await tree(t, { 'a/1.js': '', 'b/2.js': '' })
  const controller = new AbortController()
  controller.abort(new Error('stop'))
  await t.rejects(walked(dir, controller.signal), /stop/)
})

t.test('imports per language', async (t) => {
  const js = [
    "import a from './a.js'",
    "import {\n  b,\n  c,\n} from '../b'",
    "import type { T } from './types.js'",
    "import './side-effect.js'",
    "export * from './all.js'",
    "export { d } from './d.js'",
    "const e = await import('./lazy.js')",
    "const f = require('fs')",
    "export const g = 'not an import'",
  ].join('\n')
  t.same(extractImports('js', js).sort(), [
    '../b',
    './a.js',
    './all.js',
    './d.js',
    './lazy.js',
    './side-effect.js',
    './types.js',
    'fs',
  ])
  const py = 'import os, sys.path\nfrom . import sibling\nfrom ..pkg.mod import x\n  from app.core import y\n'
  t.same(extractImports('python', py), ['os', 'sys.path', '.', '..pkg.mod', 'app.core'])
  const go = 'package main\n\nimport "fmt"\nimport (\n\tstr "strings"\n\t"example.com/m/store"\n)\n'
  t.same(extractImports('go', go), ['fmt', 'strings', 'example.com/m/store'])
  const ex =
    'defmodule A do\n  alias MyApp.{Repo, Accounts.User}\n  use MyAppWeb, :controller\n  import Ecto.Query\n  require Logger\nend\n'
  t.same(extractImports('elixir', ex), [
    'MyApp.Repo',
    'MyApp.Accounts.User',
    'MyAppWeb',
    'Ecto.Query',
    'Logger',
  ])
})

t.test('imports: the forms each scan finds, and what it does not take for an import', async (t) => {
  const js = [
    "import x, { y } from './xy.js'",
    'import * as ns from "./ns.js"',
    "export * as all from './all-ns.js'",
    "export type { T } from './types.js'",
    "import type Default from './default-type.js'",
    "import { from } from './from.js'",
    "import fromage from './cheese.js'",
    "import {\n  a, // the first\n  b,\n} from\n  './multi.js'",
    "import(\n  './lazy.js'\n)",
    "export function f() { return require('./required.js') }",
    'export default function g() { return 1 }',
    "export const s = 'not an import'",
    "import z from 'unterminated",
    'import w from `./template.js`',
    "importer('./not-a-call.js')",
  ].join('\n')
  t.same(extractImports('js', js).sort(), [
    './all-ns.js',
    './cheese.js',
    './default-type.js',
    './from.js',
    './lazy.js',
    './multi.js',
    './ns.js',
    './required.js',
    './types.js',
    './xy.js',
  ])
  const py = 'from  import nothing\nfrom .... import up\nfrom a.b import (c, d)\nimport e.f as g\n'
  t.same(extractImports('python', py), ['e.f', '....', 'a.b'])
  const go = 'import "one"\nimport (\n\t"two"\n)\nimport (\n\t"three"\n'
  t.same(extractImports('go', go), ['one', 'two'], 'a block that never closes names nothing')
  const ex = 'alias MyApp.{\n  Repo,\n  Accounts\n}\nalias Other.{Unclosed\n'
  t.same(extractImports('elixir', ex), ['MyApp.Repo', 'MyApp.Accounts', 'Other'])
})

t.test('manifests: comments, line breaks and lists that never close', async (t) => {
  const deps = (rel: string, text: string) => parseManifest(rel, text).map((d) => [d.name, d.version, d.kind])
  t.same(deps('go.mod', 'module m\r\n\r\nrequire (\r\n\tgithub.com/x/y v1.2.3 // indirect\r\n)\r\n'), [
    ['github.com/x/y', 'v1.2.3', 'prod'],
  ])
  t.same(
    deps(
      'requirements.txt',
      'requests==2.31 # pinned\n# a comment\nrich[jupyter]>=13 ; python_version>"3"\n',
    ),
    [
      ['requests', '==2.31', 'prod'],
      ['rich', '>=13', 'prod'],
    ],
  )
  const mix =
    'defp deps do\n  [\n    {:phoenix, "~> 1.7"},\n    {:credo, "~> 1.7", only: [:dev, :test]},\n    {:broken, "1"\n  ]\nend\n'
  t.same(deps('mix.exs', mix), [
    ['phoenix', '~> 1.7', 'prod'],
    ['credo', '~> 1.7', 'dev'],
  ])
  const cargo = '[dependencies]\nserde = { version = "1", features = [\n  "derive",\n] }\ntokio = "1.37"\n'
  t.same(deps('Cargo.toml', cargo), [
    ['serde', '1', 'prod'],
    ['tokio', '1.37', 'prod'],
  ])
  const pyproject = '[project]\ndependencies = [\n  "httpx>=0.27",  # client\n  "rich",\n]\n'
  t.same(deps('pyproject.toml', pyproject), [
    ['httpx', '>=0.27', 'prod'],
    ['rich', null, 'prod'],
  ])
})

t.test('cycles are components of more than one module; self-loops are not cycles', async (t) => {
  const edge = (from: string, to: string) => ({ from, to, count: 1 })
  const nodes = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
  const edges = [
    edge('a', 'b'),
    edge('b', 'a'),
    edge('c', 'd'),
    edge('d', 'e'),
    edge('e', 'c'),
    edge('f', 'f'),
  ]
  t.same(findCycles(nodes, [...edges, edge('e', 'g'), edge('b', 'c')]), [
    ['a', 'b'],
    ['c', 'd', 'e'],
  ])
  t.same(findCycles(['x'], [edge('x', 'x')]), [])
})

t.test('manifests: Cargo tables, go.mod single requires, poetry groups, unparsable files', async (t) => {
  const cargo =
    '[dependencies.tokio]\nversion = "1.37"\nfeatures = ["full"]\n\n[build-dependencies]\ncc = "1.0"\n'
  t.same(
    parseManifest('Cargo.toml', cargo).map((d) => [d.name, d.version, d.kind]),
    [
      ['tokio', '1.37', 'prod'],
      ['cc', '1.0', 'build'],
    ],
  )
  t.same(
    parseManifest('go.mod', 'module m\n\nrequire github.com/x/y v1.2.3\n').map((d) => [d.name, d.version]),
    [['github.com/x/y', 'v1.2.3']],
  )
  const poetry =
    '[tool.poetry.dependencies]\npython = "^3.11"\nrich = { version = "^13", optional = true }\n' +
    '[tool.poetry.group.test.dependencies]\nhypothesis = "*"\n'
  t.same(
    parseManifest('pyproject.toml', poetry).map((d) => [d.name, d.version, d.kind]),
    [
      ['rich', '^13', 'prod'],
      ['hypothesis', '*', 'dev'],
    ],
  )
  t.same(parseManifest('package.json', '{ not json'), [])
})

t.test('test files by convention', async (t) => {
  for (const rel of [
    'a.test.ts',
    'x/b.spec.js',
    'store_test.go',
    'test_app.py',
    'test/helper.ts',
    'lib/x_test.exs',
  ])
    t.ok(isTestFile(rel), rel)
  for (const rel of ['src/contest.ts', 'latest.py', 'testing/x.go']) t.notOk(isTestFile(rel), rel)
})

t.test('Python and Go imports resolve to modules of the tree', async (t) => {
  const dir = await tree(t, {
    'pkg/__init__.py': '',
    'pkg/a.py': 'from tools.helpers import x\n',
    'tools/helpers.py': 'from ..pkg import a\n',
    'go.mod': 'module example.com/m\n',
    'cmd/main.go': 'package main\n\nimport "example.com/m/internal/db"\n',
    'internal/db/db.go': 'package db\n',
  })
  const { architecture } = await analyzeTree(dir, new AbortController().signal)
  t.same(architecture.edges, [
    { from: 'cmd', to: 'internal', count: 1 },
    { from: 'pkg', to: 'tools', count: 1 },
    { from: 'tools', to: 'pkg', count: 1 },
  ])
  t.same(architecture.cycles, [['pkg', 'tools']])
})

t.test(
  'the language diff goes file by file, or compares counts when the old file list is gone',
  async (t) => {
    const parts = (inventory: SnapshotParts['inventory'], languages: Array<[string, number, number]>) => ({
      architecture: { modules: [], edges: [], cycles: [], externalImports: 0 },
      quality: {
        languages: languages.map(([language, files, lines]) => ({ language, files, lines })),
        largestFiles: [],
        todoCount: 0,
        testFiles: 0,
        sourceFiles: 0,
        testRatio: null,
      },
      dependencies: [],
      inventory,
    })
    const before = parts(
      [
        { path: 'a.js', language: 'JavaScript', lines: 10 },
        { path: 'b.js', language: 'JavaScript', lines: 5 },
        { path: 'c.py', language: 'Python', lines: 3 },
      ],
      [
        ['JavaScript', 2, 15],
        ['Python', 1, 3],
      ],
    )
    const after = parts(
      [
        { path: 'a.js', language: 'JavaScript', lines: 7 },
        { path: 'b.ts', language: 'TypeScript', lines: 5 },
        { path: 'c.py', language: 'Python', lines: 3 },
      ],
      [
        ['JavaScript', 1, 7],
        ['Python', 1, 3],
        ['TypeScript', 1, 5],
      ],
    )
    t.same(diffSnapshots(1, before, after).languages, [
      { language: 'JavaScript', filesAdded: 0, filesRemoved: 1, linesAdded: 0, linesRemoved: 8 },
      { language: 'TypeScript', filesAdded: 1, filesRemoved: 0, linesAdded: 5, linesRemoved: 0 },
    ])
    t.same(diffSnapshots(1, { ...before, inventory: undefined }, after).languages, [
      { language: 'JavaScript', filesAdded: 0, filesRemoved: 1, linesAdded: 0, linesRemoved: 8 },
      { language: 'TypeScript', filesAdded: 1, filesRemoved: 0, linesAdded: 5, linesRemoved: 0 },
    ])
  },
)
