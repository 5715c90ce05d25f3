// `npm run build` (run by `npm ci` through `prepare`): compiles the server into one ES module,
// dist/server.js, which `npm start` runs. esbuild strips the types (lint type-checks) and bundles our
// modules and typebox's ~680 small files; every other package stays an ordinary import from
// node_modules. One file instead of ~950 is about 0.4 s less start-up (BENCHMARKS.md, Footprint).
import { readFileSync, rmSync } from 'node:fs'
import { build } from 'esbuild'

const BUNDLED = new Set(['typebox'])
const { dependencies } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const external = Object.keys(dependencies)
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`])

rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true })
await build({
  entryPoints: ['src/server.ts'],
  outfile: 'dist/server.js',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external,
  // Class and function names stay as written: error names and stack traces read as in src/.
  keepNames: true,
  sourcemap: 'linked',
  logLevel: 'warning',
})
