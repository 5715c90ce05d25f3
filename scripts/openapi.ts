// Writes openapi.yaml from the route schemas (`npm run openapi`), or with --check fails when the
// committed file differs from what the routes say.
import fs from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

export const OPENAPI_FILE = fileURLToPath(new URL('../openapi.yaml', import.meta.url))

export async function generateOpenApi(): Promise<string> {
  const app = await buildApp(loadConfig({}), { documentationOnly: true })
  await app.ready()
  const yaml = app.swagger({ yaml: true })
  await app.close()
  return yaml
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const yaml = await generateOpenApi()
  if (process.argv.includes('--check')) {
    const committed = await fs.readFile(OPENAPI_FILE, 'utf8').catch(() => '')
    if (committed !== yaml) {
      process.stderr.write(
        'openapi.yaml is out of date with the routes: run `npm run openapi` and commit it\n',
      )
      process.exit(1)
    }
    process.stdout.write('openapi.yaml is up to date\n')
  } else {
    await fs.writeFile(OPENAPI_FILE, yaml)
    process.stdout.write(`wrote ${OPENAPI_FILE}\n`)
  }
}
