import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { analyzeTree } from '../src/features/registry/analyze.js'
import { registrySync } from '../src/features/registry/registry-sync.js'

const FILES = 50_000
const MODULES = 40

t.test(`a tree of ${FILES} files is analysed well within the job's timeout`, async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-registry-scale-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  // Modules m0..m39, each importing the first file of the next: one ring, so one cycle of all.
  const dirOf = (i: number) => path.join(dir, `m${i % MODULES}`, `d${i % 1000}`)
  for (let i = 0; i < 1000; i++) await fs.mkdir(dirOf(i), { recursive: true })
  const write = async (i: number) => {
    const n = ((i % MODULES) + 1) % MODULES
    const text = `import { x } from '../../m${n}/d${n}/f${n}.js'\n// TODO ${i}\nexport const y = x\n`
    await fs.writeFile(path.join(dirOf(i), `f${i}.ts`), text)
  }
  for (let i = 0; i < FILES; i += 2000) {
    await Promise.all(Array.from({ length: Math.min(2000, FILES - i) }, (_, k) => write(i + k)))
  }

  const started = Date.now()
  const analysis = await analyzeTree(dir, new AbortController().signal)
  const elapsed = Date.now() - started
  t.equal(analysis.files, FILES)
  t.equal(analysis.architecture.modules.length, MODULES)
  t.equal(analysis.architecture.cycles.length, 1)
  t.equal(analysis.architecture.cycles[0]?.length, MODULES)
  t.equal(analysis.quality.todoCount, FILES)
  // The job's timeout is 30 minutes; this machine needs seconds. A tenth of it leaves slow CI room.
  t.ok(elapsed < registrySync.timeoutMs / 10, `analysed in ${elapsed} ms`)
})
