// Encryption at rest and roles: with BACKUP_AGE_RECIPIENTS every file of a set (the dumps and
// globals.sql) is age-encrypted before it touches the disk, Debian's `age` CLI decrypts it with the
// key the server never had, and the plaintext restores row for row; globals.sql recreates dropped
// roles; restore checks decrypt with BACKUP_AGE_IDENTITY_FILE or say why they could not; a bad
// recipient stops start-up naming its variable.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { generateIdentity, identityToRecipient } from 'age-encryption'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import {
  backUp,
  backupDir,
  backupsOf,
  connect,
  createEmptyDatabase,
  databaseName,
  fillDatabase,
  fingerprint,
  globalsOf,
  restoreWithClient,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase, testConfig } from './helper.js'

const run = promisify(execFile)
const PSQL = '/usr/lib/postgresql/15/bin/psql'

async function ageCli(): Promise<string | null> {
  try {
    await run('age', ['--version'])
    return 'age'
  } catch {
    return null
  }
}

async function keyPair(t: Test) {
  const identity = await generateIdentity()
  const recipient = await identityToRecipient(identity)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-age-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const keyFile = path.join(dir, 'key.txt')
  await fs.writeFile(keyFile, `# created: test\n# public key: ${recipient}\n${identity}\n`, { mode: 0o600 })
  return { identity, recipient, keyFile }
}

const AGE = await ageCli()
// CI installs the age CLI (.ci/run), so there a missing one fails the test instead of skipping it.
const NO_AGE = AGE === null && !process.env.CI ? 'the age CLI is not installed (apt-get install age)' : false

t.test(
  'an encrypted set is decrypted by the age CLI and restores row for row; globals recreate roles',
  { skip: NO_AGE },
  async (t) => {
    const age = AGE ?? 'age'
    const { recipient, keyFile } = await keyPair(t)
    const sourceUrl = await createTestDatabase(t)
    const source = connect(t, sourceUrl)
    await fillDatabase(source)
    const role = `steward_role_${randomBytes(4).toString('hex')}`
    await source.unsafe(`create role ${role} nologin; grant select on shop.customers to ${role}`)
    t.teardown(async () => {
      await source.unsafe(`drop owned by ${role}`).catch(() => {})
      await source.unsafe(`drop role if exists ${role}`)
    })
    const expected = await fingerprint(source)
    const dir = await backupDir(t)
    const app = await buildTestApp(t, {
      env: {
        SCHEDULER_ENABLED: 'false',
        BACKUP_DIR: dir,
        BACKUP_DATABASES: databaseName(sourceUrl),
        BACKUP_AGE_RECIPIENTS: recipient,
      },
    })
    const made = await backUp(app)
    t.equal(made.state, 'succeeded', JSON.stringify(made.error))
    t.equal(made.result?.encrypted, true)
    const [dump] = backupsOf(made)
    const globals = globalsOf(made)
    t.match(dump?.file, /\.sql\.age$/)
    t.match(globals?.file, /\/globals\.sql\.age$/)
    const listed = (await app.inject(`/backups/${dump?.id}`)).json()
    t.equal(listed.encrypted, true)
    const stored = await fs.readFile(path.join(dir, dump?.file as string))
    t.ok(stored.subarray(0, 21).toString().startsWith('age-encryption.org/v1'), 'the age format')
    t.notOk(stored.includes('customer 1'), 'no plaintext on disk')
    const download = await app.inject(`/backups/${dump?.id}/download`)
    t.equal(download.headers['content-type'], 'application/octet-stream')
    t.match(download.headers['content-disposition'], /\.sql\.age"$/)

    // What an operator does with the bucket and the key: age -d, then psql.
    const plain = path.join(dir, 'restored.sql')
    await run(age, ['-d', '-i', keyFile, '-o', plain, path.join(dir, dump?.file as string)])
    const target = await createEmptyDatabase(t, source, sourceUrl)
    const restored = connect(t, target)
    await source.unsafe(`drop owned by ${role}`)
    await source.unsafe(`drop role ${role}`)
    const globalsSql = path.join(dir, 'globals.sql')
    await run(age, ['-d', '-i', keyFile, '-o', globalsSql, path.join(dir, globals?.file as string)])
    t.match(await fs.readFile(globalsSql, 'utf8'), new RegExp(`CREATE ROLE ${role};`))
    const env = { ...process.env, PGPASSWORD: decodeURIComponent(new URL(sourceUrl).password) }
    const url = new URL(sourceUrl)
    // Roles that exist already (postgres) fail to be created again; the others are created.
    await run(
      PSQL,
      [
        '-X',
        '-q',
        '-h',
        url.hostname,
        '-p',
        url.port,
        '-U',
        url.username,
        '-d',
        databaseName(sourceUrl),
        '-f',
        globalsSql,
      ],
      { env },
    )
    const [back] = await source`select count(*)::int as n from pg_roles where rolname = ${role}`
    t.equal(back?.n, 1, 'globals.sql recreated the dropped role')
    await restoreWithClient(source, target, plain)
    t.same(await fingerprint(restored), expected, 'every row of every table')
    const [grant] = await restored`select has_table_privilege(${role}, 'shop.customers', 'select') as ok`
    t.equal(grant?.ok, true, "the dump's GRANT found its role")
  },
)

t.test('restore checks decrypt with the identity file, or say why they could not', async (t) => {
  const { recipient, keyFile } = await keyPair(t)
  const dir = await backupDir(t)
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false', BACKUP_DIR: dir, BACKUP_AGE_RECIPIENTS: recipient }
  const app = await buildTestApp(t, { databaseUrl, env })
  const made = await backUp(app)
  const [dump] = backupsOf(made)
  const skipped = (await app.inject({ method: 'POST', url: `/backups/${dump?.id}/verify` })).json()
  t.match(skipped.verifyResult, {
    ok: true,
    checksum: 'ok',
    restoreSkipped: /BACKUP_AGE_IDENTITY_FILE is not set/,
  })
  t.notOk(skipped.verifyResult.restoredWith)
  await app.close()

  const withKey = await buildTestApp(t, { databaseUrl, env: { ...env, BACKUP_AGE_IDENTITY_FILE: keyFile } })
  const full = (await withKey.inject({ method: 'POST', url: `/backups/${dump?.id}/verify` })).json()
  t.match(full.verifyResult, { ok: true, checksum: 'ok', restoredWith: 'psql', source: 'local' })
  t.notOk(full.verifyResult.restoreSkipped)
  const globals = globalsOf(made)
  const roles = (await withKey.inject({ method: 'POST', url: `/backups/${globals?.id}/verify` })).json()
  t.match(roles.verifyResult, { ok: true, restoreSkipped: /roles are server-wide/ })

  const other = await keyPair(t)
  await withKey.close()
  const wrongKey = await buildTestApp(t, {
    databaseUrl,
    env: { ...env, BACKUP_AGE_IDENTITY_FILE: other.keyFile },
  })
  const failed = (await wrongKey.inject({ method: 'POST', url: `/backups/${dump?.id}/verify` })).json()
  t.match(failed.verifyResult, { ok: false, error: { code: 'decrypt_failed' } })
})

t.test('a bad recipient stops start-up with a message naming the variable', async (t) => {
  const config = await testConfig(t, { env: { BACKUP_AGE_RECIPIENTS: 'age1notakey' } })
  await t.rejects(buildApp(config), /BACKUP_AGE_RECIPIENTS: "age1notakey" is not an age public key/)
  const missing = await testConfig(t, { env: { BACKUP_AGE_RECIPIENTS_FILE: '/nonexistent/recipients.txt' } })
  await t.rejects(buildApp(missing), /BACKUP_AGE_RECIPIENTS_FILE: cannot read/)
})
