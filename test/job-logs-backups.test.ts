// What the backup jobs write in their runs' logs: per database its start, pg_dump's warnings (a
// line each), bytes, sha256 and seconds; encryption and the off-site upload of each file; and the
// steps of the restore drill, which reports its progress in backups checked.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { generateIdentity, identityToRecipient } from 'age-encryption'
import type { FastifyInstance } from 'fastify'
import type { Sql } from 'postgres'
import t, { type Test } from 'tap'
import { locateTool, serverVersion } from '../src/features/backups/tools.js'
import {
  backUp,
  backupDir,
  backupsOf,
  connect,
  databaseName,
  globalsOf,
  type RunView,
  waitForRun,
} from './fixtures/backup-data.js'
import { buildTestApp, createTestDatabase } from './helper.js'
import { startS3 } from './support/s3.js'

interface LogLine {
  seq: number
  level: string
  message: string
  fields: Record<string, unknown> | null
}

async function logOf(app: FastifyInstance, id: number): Promise<LogLine[]> {
  const lines: LogLine[] = []
  for (let after = 0; ; ) {
    const page = (await app.inject(`/runs/${id}/logs?after=${after}&limit=1000`)).json()
    lines.push(...page.items)
    if (page.nextCursor === null) return lines
    after = Number(page.nextCursor)
  }
}

const messages = (lines: LogLine[]) => lines.map((l) => l.message)
const named = (lines: LogLine[], message: string) => lines.filter((l) => l.message === message)

/** A small database of its own, and its name. */
async function sourceDatabase(t: Test): Promise<{ sql: Sql; database: string }> {
  const url = await createTestDatabase(t)
  const sql = connect(t, url)
  await sql`create table items as select i as id, 'item ' || i as label from generate_series(1, 500) i`
  return { sql, database: databaseName(url) }
}

async function keyPair(t: Test) {
  const identity = await generateIdentity()
  const recipient = await identityToRecipient(identity)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-age-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const keyFile = path.join(dir, 'key.txt')
  await fs.writeFile(keyFile, `${identity}\n`, { mode: 0o600 })
  return { recipient, keyFile }
}

t.test('an encrypted, off-site backup and its drill say each step', async (t) => {
  const { database } = await sourceDatabase(t)
  const { recipient, keyFile } = await keyPair(t)
  const s3 = await startS3(t)
  const saved = { ...process.env }
  t.teardown(() => {
    process.env = saved
  })
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
  })
  const app = await buildTestApp(t, {
    env: {
      SCHEDULER_ENABLED: 'false',
      RUN_POLL_MS: '100',
      BACKUP_DIR: await backupDir(t),
      BACKUP_DATABASES: database,
      BACKUP_AGE_RECIPIENTS: recipient,
      BACKUP_AGE_IDENTITY_FILE: keyFile,
      BACKUP_REMOTE_URL: `s3://${s3.bucket}/steward`,
      BACKUP_REMOTE_FORCE_PATH_STYLE: 'true',
    },
  })

  const run = await backUp(app)
  t.equal(run.state, 'succeeded', run.error?.message ?? 'succeeded')
  const [dump] = backupsOf(run)
  const globals = globalsOf(run)
  const lines = await logOf(app, run.id)
  t.match(named(lines, 'backup started')[0]?.fields, {
    kind: 'manual',
    databases: [database],
    format: 'plain',
  })
  t.match(named(lines, 'encrypting with age')[0]?.fields, { recipients: 1 })
  t.match(named(lines, 'dumping database')[0]?.fields, { database, file: dump?.file })
  t.match(named(lines, 'database dumped')[0]?.fields, {
    database,
    bytes: dump?.bytes,
    sha256: dump?.sha256,
    seconds: Number,
    encrypted: true,
  })
  t.match(named(lines, 'roles dumped')[0]?.fields, { bytes: globals?.bytes, sha256: globals?.sha256 })
  t.match(named(lines, 'backup set recorded')[0]?.fields, { files: 2, bytes: run.result?.bytes })
  t.match(named(lines, 'uploading files off-site')[0]?.fields, { files: 2 })
  const uploaded = named(lines, 'uploaded off-site')
  t.same(
    uploaded.map((l) => l.fields?.backupId),
    [dump?.id, globals?.id],
    'each file uploaded, oldest first',
  )
  t.match(uploaded[0]?.fields, { key: `steward/${dump?.file}`, bytes: dump?.bytes, seconds: Number })
  t.match(named(lines, 'set uploaded off-site')[0]?.fields, { files: 2, earlier: 0 })
  const order = messages(lines)
  t.ok(
    order.indexOf('database dumped') < order.indexOf('backup set recorded') &&
      order.indexOf('backup set recorded') < order.indexOf('uploaded off-site'),
    'in the order it happened',
  )
  t.notOk(
    lines.some((l) => l.level === 'warn' || l.level === 'error'),
    'nothing to warn about',
  )

  const drill = await app.inject({ method: 'POST', url: '/jobs/backup-verify/runs', payload: { args: {} } })
  const drilled = (await waitForRun(app, drill.json().id, 60_000)) as RunView & {
    progress: { done: number; total: number; unit: string }
  }
  t.equal(drilled.state, 'succeeded', drilled.error?.message ?? 'succeeded')
  t.match(drilled.progress, { done: 2, total: 2, unit: 'backups' })
  const steps = await logOf(app, drilled.id)
  t.match(named(steps, 'restore drill started')[0]?.fields, { backups: 2 })
  t.same(
    named(steps, 'checking backup').map((l) => l.fields?.backupId),
    [dump?.id, globals?.id],
  )
  t.match(named(steps, 'file read')[0]?.fields, { backupId: dump?.id, checksum: 'ok', bytes: dump?.bytes })
  t.ok(named(steps, 'file decrypted').length === 2, 'both files decrypted')
  t.match(named(steps, 'restoring into a scratch database')[0]?.fields, { backupId: dump?.id, with: 'psql' })
  t.match(named(steps, 'restored')[0]?.fields, { backupId: dump?.id, seconds: Number })
  const [entry] = (drilled.result?.databases ?? []) as Array<Record<string, unknown>>
  t.match(named(steps, 'backup checked')[0]?.fields, {
    backupId: dump?.id,
    ok: true,
    tables: entry?.tables,
    rows: entry?.rows,
  })
  t.match(named(steps, 'restore drill finished')[0]?.fields, { checked: 2, failed: 0 })
})

/** A pg_dump that prints two warnings before doing the real work: the real one, wrapped. */
async function chattyPgDump(t: Test, sql: Sql): Promise<string> {
  const server = await serverVersion(sql)
  const pgDump = await locateTool('pg_dump', server)
  const pgDumpall = await locateTool('pg_dumpall', server)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-chatty-pg-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const script = [
    '#!/bin/sh',
    `if [ "$1" = "--version" ]; then exec "${pgDump.path}" --version; fi`,
    'echo "pg_dump: warning: first thing to know" >&2',
    'echo "something without a prefix" >&2',
    `exec "${pgDump.path}" "$@"`,
  ].join('\n')
  await fs.writeFile(path.join(dir, 'pg_dump'), `${script}\n`, { mode: 0o755 })
  await fs.symlink(pgDumpall.path, path.join(dir, 'pg_dumpall'))
  return dir
}

t.test("each line pg_dump prints is a warning of the run's own", async (t) => {
  const { sql, database } = await sourceDatabase(t)
  const binDir = await chattyPgDump(t, sql)
  const app = await buildTestApp(t, {
    env: {
      SCHEDULER_ENABLED: 'false',
      RUN_POLL_MS: '100',
      BACKUP_DIR: await backupDir(t),
      BACKUP_DATABASES: database,
      BACKUP_PG_BIN_DIR: binDir,
    },
  })
  const run = await backUp(app)
  t.equal(run.state, 'succeeded', run.error?.message ?? 'succeeded')
  const lines = await logOf(app, run.id)
  const warnings = lines.filter((l) => l.level === 'warn')
  t.same(
    warnings.map((l) => [l.message, l.fields]),
    [
      ['pg_dump: warning: first thing to know', { database }],
      ['pg_dump: something without a prefix', { database }],
    ],
  )
  t.ok(
    warnings.every((w) => w.seq < (named(lines, 'database dumped')[0]?.seq ?? 0)),
    'said before the dump line',
  )
  t.match(named(lines, 'not encrypting: no age recipients configured'), [{ level: 'info' }])
})
