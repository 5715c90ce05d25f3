// examples/client.ts, the integrators' example, against a live server on a real port: it triggers a
// manual backup, follows the run, finds the run's files and downloads one that matches the record.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { main } from '../examples/client.js'
import { backupDir } from './fixtures/backup-data.js'
import { buildTestApp, TEST_ADMIN_TOKEN } from './helper.js'

t.test('the example client backs up, follows the run and downloads the dump', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', BACKUP_DIR: await backupDir(t) } })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-client-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const lines: string[] = []

  const result = await main({ url, token: TEST_ADMIN_TOKEN, dir, pollMs: 100, log: (l) => lines.push(l) })

  t.equal(result.run.state, 'succeeded')
  const run = (await app.inject(`/runs/${result.run.id}`)).json()
  t.equal(run.state, 'succeeded', 'the server agrees the run succeeded')
  const made = (run.result.backups as Array<{ id: number }>).map((b) => b.id).sort()
  t.same(result.backups.map((b) => b.id).sort(), made, 'it found exactly the files the run made')
  const backup = (await app.inject(`/backups/${result.downloaded.backup.id}`)).json()
  t.equal(backup.scope, 'database', 'it downloaded a database dump, not globals.sql')
  const stat = await fs.stat(result.downloaded.file)
  t.equal(path.dirname(result.downloaded.file), dir, 'the file is in the directory given')
  t.ok(backup.bytes > 0, 'a file with something in it')
  t.equal(stat.size, backup.bytes, 'the downloaded file has the size the API reports')
  t.match(lines, [/triggered database-backup: run \d+/], 'it says what it did')
  t.ok(
    lines.some((l) => l.includes(`run ${run.id}: succeeded`)),
    'it says how the run ended',
  )
  t.ok(
    lines.some((l) => l.includes(`downloaded backup ${backup.id} to ${result.downloaded.file}`)),
    'it says where the file went',
  )
})

t.test('the example client reports what Steward refused', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  await t.rejects(
    main({ url, token: 'stw_not-a-token', dir: os.tmpdir(), log: () => {} }),
    /POST \/jobs\/database-backup\/runs: 401 /,
  )
})
