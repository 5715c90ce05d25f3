// The package's own directory (package.json, migrations/, dashboard/), found from where this code
// runs: src/lib/ through tsx, or dist/ once `npm run build` has bundled the server into one file.
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

function findPackageRoot(from: string): string {
  for (let dir = from; ; ) {
    if (existsSync(path.join(dir, 'package.json'))) return dir
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${from}`)
    dir = parent
  }
}

export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)))

/** A path inside the package: `packagePath('migrations')`. */
export const packagePath = (...parts: string[]) => path.join(PACKAGE_ROOT, ...parts)
