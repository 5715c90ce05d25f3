// Every setting is documented: each variable of the config schema has a row in README's
// configuration table and a line in .env.example, and neither lists a variable Steward does not read
// (the AWS SDK's own variables excepted).
import fs from 'node:fs/promises'
import t from 'tap'
import { ConfigSchema } from '../src/config.js'

const SDK_VARIABLES = new Set([
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_REGION',
  'AWS_ENDPOINT_URL_S3',
])

t.test('README, .env.example and the config schema name the same variables', async (t) => {
  const schema = new Set(Object.keys(ConfigSchema.properties))
  const readme = await fs.readFile(new URL('../README.md', import.meta.url), 'utf8')
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Logs'))
  const documented = new Set([...table.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1] as string))
  const example = await fs.readFile(new URL('../.env.example', import.meta.url), 'utf8')
  const listed = new Set([...example.matchAll(/^# ([A-Z0-9_]+)=/gm)].map((m) => m[1] as string))
  t.same(
    [...schema].filter((v) => !documented.has(v)),
    [],
    'every variable has a row in README',
  )
  t.same(
    [...documented].filter((v) => !schema.has(v)),
    [],
    'README documents no unknown variable',
  )
  t.same(
    [...schema].filter((v) => !listed.has(v)),
    [],
    'every variable is in .env.example',
  )
  t.same(
    [...listed].filter((v) => !schema.has(v) && !SDK_VARIABLES.has(v)),
    [],
    '.env.example lists no unknown one',
  )
})
