// Off-site copies against a real S3-compatible server (s3rver, in process): URLs and keys, the
// upload/head/download/delete round trip, multipart uploads, integrity checks, cancelling, the
// failure messages (store down or silent, wrong credentials, missing bucket), listing and removing
// a set, configuration from the SDK's environment variables, loading the SDK lazily; then GFS
// retention. AWS_* variables are cleared for this file so the machine's settings cannot leak in.

import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { promisify } from 'node:util'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import {
  isoWeek,
  type KeepCounts,
  prunable,
  type RetainableSet,
  retained,
} from '../src/features/backups/gfs.js'
import { describeRemoteError, RemoteError } from '../src/features/backups/offsite/remote-errors.js'
import {
  createRemoteStore,
  parseRemoteUrl,
  type RemoteStoreOptions,
} from '../src/features/backups/offsite/remote-store.js'
import { startS3, type TestS3 } from './support/s3.js'

const MiB = 1024 * 1024
const savedEnv = { ...process.env }
for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name]
t.teardown(() => {
  process.env = savedEnv
})

async function tempDir(t: Test) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-remote-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  return dir
}

async function writeFile(dir: string, name: string, data: Buffer) {
  const file = path.join(dir, name)
  await fs.writeFile(file, data)
  return { file, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function storeFor(t: Test, s3: TestS3, options: Partial<RemoteStoreOptions> = {}) {
  const store = createRemoteStore({
    url: `s3://${s3.bucket}/steward/prod`,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    ...options,
  })
  t.teardown(() => store.close())
  return store
}

t.test('remote URLs name a bucket and an optional prefix; keys go under the prefix', async (t) => {
  t.same(parseRemoteUrl('s3://backups'), { bucket: 'backups', prefix: '' })
  t.same(parseRemoteUrl('s3://backups/'), { bucket: 'backups', prefix: '' })
  t.same(parseRemoteUrl('s3://backups/steward/prod/'), { bucket: 'backups', prefix: 'steward/prod' })
  t.same(parseRemoteUrl(' S3://my.bucket-1//a/b// '), { bucket: 'my.bucket-1', prefix: 'a/b' })
  for (const bad of ['', 'backups', 'http://backups/x', 's3://', 's3:///prefix', 's3://Bad_Bucket']) {
    t.throws(() => parseRemoteUrl(bad), /BACKUP_REMOTE_URL/, bad)
  }
  const err = t.throws(() => parseRemoteUrl('s3://AKIA:hunter2@backups/x')) as Error
  t.notMatch(err.message, /hunter2/, 'a secret in the URL is not echoed')

  const store = createRemoteStore({ url: 's3://backups/steward/prod' })
  t.equal(
    store.keyFor('hourly/backup_20260101_010000/shop.sql'),
    'steward/prod/hourly/backup_20260101_010000/shop.sql',
  )
  t.equal(store.keyFor('/daily/x.sql'), 'steward/prod/daily/x.sql')
  t.equal(createRemoteStore({ url: 's3://backups' }).keyFor('daily/x.sql'), 'daily/x.sql')
  t.throws(() => store.keyFor('../escape.sql'), /not a relative backup path/)
  t.throws(() => store.keyFor(''), /not a relative backup path/)
})

t.test('upload, head, download (whole and a range) and delete', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3)
  const data = randomBytes(100_000)
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'shop.sql', data)
  const key = store.keyFor('hourly/backup_20260101_010000/shop.sql')

  await store.upload(key, file, { bytes, sha256 })
  const head = await store.head(key)
  t.match(head, { bytes, sha256, etag: /\S/, lastModified: Date })

  const whole = await store.download(key)
  t.match(whole, { bytes, totalBytes: bytes })
  t.ok((await readAll(whole.stream)).equals(data), 'the whole object reads back')
  const part = await store.download(key, { start: 10, end: 19 })
  t.match(part, { bytes: 10, totalBytes: bytes })
  t.ok((await readAll(part.stream)).equals(data.subarray(10, 20)), 'a range reads back')

  await store.delete(key)
  t.equal(await store.head(key), undefined, 'gone after delete')
  await store.delete(key) // deleting twice is fine, as S3 has it
  await t.rejects(store.download(key), { name: 'RemoteError', code: 'download_failed', reason: 'not_found' })
})

t.test('a file over 16 MiB goes up in parts and comes back whole', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3)
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'big.dump', randomBytes(17 * MiB))
  const key = store.keyFor('daily/backup_20260101_020000/big.dump')
  await store.upload(key, file, { bytes, sha256 })
  t.match(await store.head(key), { bytes, sha256 })
  const { stream } = await store.download(key)
  const hash = createHash('sha256')
  for await (const chunk of stream) hash.update(chunk as Buffer)
  t.equal(hash.digest('hex'), sha256, 'the downloaded bytes hash as uploaded')
})

t.test('an upload that does not match what was expected fails and leaves nothing', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3)
  const dir = await tempDir(t)
  const { file, bytes, sha256 } = await writeFile(dir, 'a.sql', randomBytes(5000))
  const key = store.keyFor('hourly/set/a.sql')

  const wrongHash = { bytes, sha256: '0'.repeat(64) }
  await t.rejects(store.upload(key, file, wrongHash), {
    code: 'upload_failed',
    reason: 'integrity',
    message: /sha256/,
  })
  t.equal(await store.head(key), undefined, 'the bad copy was removed')
  await t.rejects(store.upload(key, file, { bytes: bytes + 1, sha256 }), {
    reason: 'integrity',
    message: /bytes/,
  })

  await fs.writeFile(file, randomBytes(5000)) // the file changed on disk after it was hashed
  await t.rejects(store.upload(key, file, { bytes, sha256 }), { reason: 'integrity', message: /sha256/ })
  t.equal(await store.head(key), undefined)
  await t.rejects(store.upload(key, path.join(dir, 'missing.sql'), { bytes, sha256 }), {
    code: 'upload_failed',
    message: /ENOENT/,
  })
})

t.test('an upload stops when its signal aborts', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3)
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'big.dump', randomBytes(17 * MiB))
  const key = store.keyFor('daily/set/big.dump')

  const before = new AbortController()
  before.abort(new Error('cancelled before'))
  await t.rejects(store.upload(key, file, { bytes, sha256, signal: before.signal }), /cancelled before/)

  const starting = new AbortController()
  const started = store.upload(key, file, { bytes, sha256, signal: starting.signal })
  starting.abort(new Error('cancelled while starting'))
  await t.rejects(started, /cancelled while starting/)

  const during = new AbortController()
  const uploading = store.upload(key, file, { bytes, sha256, signal: during.signal })
  setTimeout(() => during.abort(new Error('cancelled during')), 20)
  await t.rejects(uploading, /cancelled during/)
  t.equal(await store.head(key), undefined, 'no object was completed')
})

t.test('a store that is down fails within seconds, saying it is unreachable', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3)
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'a.sql', randomBytes(1000))
  await s3.close()
  const started = Date.now()
  const err = await store.upload(store.keyFor('a.sql'), file, { bytes, sha256 }).catch((e: unknown) => e)
  t.ok(Date.now() - started < 5000, 'fails fast')
  t.type(err, RemoteError)
  t.match(err, {
    code: 'upload_failed',
    reason: 'unreachable',
    retryable: true,
    message: /^object store at http:\/\/127\.0\.0\.1:\d+ is unreachable: .*ECONNREFUSED/,
  })
})

t.test('a store that accepts connections but never answers times out', async (t) => {
  const sockets = new Set<net.Socket>()
  const silent = net.createServer((socket) => sockets.add(socket))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    silent.close()
  })
  const { port } = silent.address() as net.AddressInfo
  const store = createRemoteStore({
    url: 's3://bucket',
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    socketTimeoutMs: 200,
  })
  t.teardown(() => store.close())
  await t.rejects(store.head('x'), { reason: 'unreachable', message: /is unreachable: .*timed out/ })
})

t.test('wrong credentials are named as such, without the secret', async (t) => {
  const s3 = await startS3(t)
  const credentials = { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'very-secret-value' }
  const store = storeFor(t, s3, { credentials })
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'a.sql', randomBytes(1000))
  const err = await store.upload(store.keyFor('a.sql'), file, { bytes, sha256 }).catch((e: unknown) => e)
  t.match(err, {
    reason: 'credentials',
    retryable: false,
    message: /^object store refused the credentials \(InvalidAccessKeyId: /,
  })
  t.notMatch((err as Error).message, /very-secret-value/)
  // A HEAD answer has no body to name the error: the status says it.
  await t.rejects(store.head('x'), { reason: 'credentials', message: /refused the credentials \(HTTP 403\)/ })
})

t.test('a missing bucket is named', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3, { url: 's3://no-such-bucket/steward' })
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'a.sql', randomBytes(1000))
  await t.rejects(store.upload(store.keyFor('a.sql'), file, { bytes, sha256 }), {
    reason: 'no_bucket',
    retryable: false,
    message: "bucket 'no-such-bucket' does not exist",
  })
  await t.rejects(store.list(store.keyFor('hourly/')), { message: "bucket 'no-such-bucket' does not exist" })
})

t.test('list shows keys with sizes; deletePrefix removes one whole set', async (t) => {
  const s3 = await startS3(t)
  const store = storeFor(t, s3)
  const dir = await tempDir(t)
  const files = {
    'hourly/backup_1/a.sql': 10,
    'hourly/backup_1/b.sql': 20,
    'hourly/backup_10/a.sql': 30,
    'daily/backup_1/a.sql': 40,
  }
  for (const [rel, size] of Object.entries(files)) {
    const { file, bytes, sha256 } = await writeFile(dir, `${size}.sql`, randomBytes(size))
    await store.upload(store.keyFor(rel), file, { bytes, sha256 })
  }
  const hourly = await store.list(store.keyFor('hourly/'))
  t.same(
    hourly.map(({ key, bytes }) => [key, bytes]),
    [
      ['steward/prod/hourly/backup_1/a.sql', 10],
      ['steward/prod/hourly/backup_1/b.sql', 20],
      ['steward/prod/hourly/backup_10/a.sql', 30],
    ],
  )
  t.ok(hourly.every((o) => o.lastModified instanceof Date))

  // backup_1 is a set, not a prefix of names: backup_10 stays.
  t.equal(await store.deletePrefix(store.keyFor('hourly/backup_1')), 2)
  t.same(
    (await store.list(store.keyFor('hourly/'))).map((o) => o.key),
    ['steward/prod/hourly/backup_10/a.sql'],
  )
  t.equal(await store.deletePrefix(store.keyFor('hourly/backup_1/')), 0, 'an empty set is fine')
  await t.rejects(store.deletePrefix(''), /not a set's prefix/)
  await t.rejects(store.deletePrefix('other/backup_1'), /not a set's prefix/)
  t.equal((await store.list('steward/')).length, 2)
})

t.test('endpoint, region and credentials come from the SDK environment variables', async (t) => {
  const s3 = await startS3(t)
  t.teardown(() => {
    for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name]
  })
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9', // the S3-specific one wins
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'eu-central-1',
  })
  const store = createRemoteStore({ url: `s3://${s3.bucket}/env`, forcePathStyle: true })
  t.teardown(() => store.close())
  const { file, bytes, sha256 } = await writeFile(await tempDir(t), 'a.sql', randomBytes(1000))
  await store.upload(store.keyFor('a.sql'), file, { bytes, sha256 })
  t.match(await store.head(store.keyFor('a.sql')), { bytes, sha256 })

  delete process.env.AWS_ENDPOINT_URL_S3
  process.env.AWS_ENDPOINT_URL = 'http://user:pw@127.0.0.1:9/?token=x'
  const down = createRemoteStore({ url: 's3://bucket', forcePathStyle: true })
  t.teardown(() => down.close())
  const err = (await down.head('a').catch((e: unknown) => e)) as Error
  t.match(err.message, /^object store at http:\/\/127\.0\.0\.1:9 is unreachable/, 'the generic one, redacted')
})

t.test('failure messages say why in one line', async (t) => {
  const sdkError = (name: string, message: string, status?: number) =>
    Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } })
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:9000'), { code: 'ECONNREFUSED' })
  t.equal(
    describeRemoteError(refused, 'b'),
    'object store is unreachable: connect ECONNREFUSED 10.0.0.1:9000',
  )
  const timeout = sdkError('TimeoutError', 'socket did not connect within 5000 ms')
  t.match(
    describeRemoteError(timeout, 'b', 'https://s3.example'),
    /^object store at https:\/\/s3\.example is unreachable/,
  )
  const noCredentials = sdkError('CredentialsProviderError', 'Could not load credentials from any providers')
  t.match(
    describeRemoteError(noCredentials, 'b'),
    /^no credentials for the object store \(set AWS_ACCESS_KEY_ID/,
  )
  const signature = sdkError(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match',
    403,
  )
  t.match(
    describeRemoteError(signature, 'b'),
    /^object store refused the credentials \(SignatureDoesNotMatch: /,
  )
  t.equal(
    describeRemoteError(sdkError('SlowDown', 'Please reduce your request rate.', 503), 'b'),
    'Please reduce your request rate.',
  )
  t.equal(describeRemoteError(sdkError('Unknown', 'UnknownError', 500), 'b'), 'HTTP 500')
  t.equal(
    describeRemoteError(sdkError('NoSuchBucket', 'The specified bucket does not exist', 404), 'b'),
    "bucket 'b' does not exist",
  )
  t.match(RemoteError.from('upload_failed', refused, 'x'), {
    reason: 'unreachable',
    retryable: true,
    cause: refused,
  })
})

t.test('the SDK is loaded on first use, not on import', async (t) => {
  const script = `
    import { createRequire } from 'node:module'
    const require = createRequire(import.meta.url)
    const loaded = () => Object.keys(require.cache).some((k) => k.includes('@aws-sdk/client-s3'))
    const { createRemoteStore } = await import(process.argv[1])
    const store = createRemoteStore({ url: 's3://bucket', endpoint: 'http://127.0.0.1:9' })
    const before = loaded()
    await store.head('x').catch(() => {})
    console.log(JSON.stringify({ before, after: loaded() }))`
  const modulePath = path.resolve('src/features/backups/offsite/remote-store.ts')
  const args = ['--import', 'tsx', '--no-warnings', '--input-type=module', '-e', script, modulePath]
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' }
  const { stdout } = await promisify(execFile)(process.execPath, args, { env })
  t.same(JSON.parse(stdout), { before: false, after: true })
})

// GFS retention ---------------------------------------------------------------------------------

const HOUR = 3_600_000
const at = (iso: string) => new Date(iso)

function gfsFixture(): RetainableSet[] {
  const sets: RetainableSet[] = []
  // A daily set at 02:00 every day from 2025-11-01 to 2026-01-20 (a Tuesday).
  for (
    let d = at('2025-11-01T02:00:00Z');
    d <= at('2026-01-20T02:00:00Z');
    d = new Date(d.getTime() + 24 * HOUR)
  ) {
    sets.push({ id: `daily-${d.toISOString().slice(0, 10)}`, kind: 'daily', createdAt: d })
  }
  // An hourly set every hour of the last two days.
  for (let h = 0; h < 48; h++) {
    const d = new Date(at('2026-01-20T23:00:00Z').getTime() - h * HOUR)
    sets.push({ id: `hourly-${d.toISOString().slice(0, 13)}`, kind: 'hourly', createdAt: d })
  }
  sets.push({ id: 'manual-old', kind: 'manual', createdAt: at('2024-03-01T12:00:00Z') })
  sets.push({ id: 'manual-new', kind: 'manual', createdAt: at('2026-01-20T12:00:00Z') })
  return sets
}

t.test('ISO weeks are computed in UTC, with the year of their Thursday', async (t) => {
  t.equal(isoWeek(at('2026-01-01T00:00:00Z')), '2026-W01') // a Thursday
  t.equal(isoWeek(at('2024-12-30T10:00:00Z')), '2025-W01') // Monday of the first week of 2025
  t.equal(isoWeek(at('2021-01-03T10:00:00Z')), '2020-W53') // Sunday, still 2020
  t.equal(isoWeek(at('2027-01-03T10:00:00Z')), '2026-W53')
  t.equal(isoWeek(at('2026-01-18T23:30:00Z')), '2026-W03', 'Sunday late in UTC')
  t.equal(isoWeek(at('2026-01-19T00:30:00Z')), '2026-W04', 'Monday early in UTC')
  t.equal(isoWeek(at('2026-01-19T00:30:00+02:00')), '2026-W03', 'an offset is converted first')
})

t.test('GFS keeps hourly, daily, weekly and monthly tiers and every manual set', async (t) => {
  const sets = gfsFixture()
  const keep: KeepCounts = { hourly: 24, daily: 7, weekly: 4, monthly: 3 }
  const kept = retained(sets, keep)
  const keptDaily = [...kept].filter((id) => id.startsWith('daily-')).sort()
  t.same(keptDaily, [
    'daily-2025-11-30', // monthly: November
    'daily-2025-12-31', // monthly: December
    'daily-2026-01-04', // weekly: 2026-W01 (Mon 2025-12-29 to Sun 2026-01-04)
    'daily-2026-01-11', // weekly: 2026-W02
    'daily-2026-01-14', // daily: the newest seven, which also cover W04, W03 and January
    'daily-2026-01-15',
    'daily-2026-01-16',
    'daily-2026-01-17',
    'daily-2026-01-18',
    'daily-2026-01-19',
    'daily-2026-01-20',
  ])
  const keptHourly = [...kept].filter((id) => id.startsWith('hourly-')).sort()
  t.equal(keptHourly.length, 24)
  t.equal(keptHourly[0], 'hourly-2026-01-20T00', 'the newest 24 hours')
  t.ok(kept.has('manual-old') && kept.has('manual-new'), 'manual sets are kept')

  const pruned = prunable(sets, keep)
  t.equal(pruned.length + kept.size, sets.length, 'every set is either kept or prunable')
  t.ok(pruned.every((s) => !kept.has(s.id) && s.kind !== 'manual'))
})

t.test('GFS with nothing to keep prunes everything but manual sets', async (t) => {
  const sets = gfsFixture()
  const kept = retained(sets, { hourly: 0, daily: 0, weekly: 0, monthly: 0 })
  t.same([...kept].sort(), ['manual-new', 'manual-old'])
  t.same(retained(sets, { hourly: -1, daily: Number.NaN, weekly: 0, monthly: 0 }), kept)
  const undated = { id: 'undated', kind: 'daily' as const, createdAt: new Date('nope') }
  t.ok(
    retained([undated], { hourly: 0, daily: 0, weekly: 0, monthly: 0 }).has('undated'),
    'undated sets stay',
  )
})

t.test('GFS: keeping more never keeps fewer, and manual sets always stay', async (t) => {
  const set = fc.record({
    id: fc.uuid(),
    kind: fc.constantFrom('hourly' as const, 'daily' as const, 'manual' as const),
    createdAt: fc.date({
      min: at('2024-01-01T00:00:00Z'),
      max: at('2027-01-01T00:00:00Z'),
      noInvalidDate: true,
    }),
  })
  const counts = fc.record({
    hourly: fc.nat(10),
    daily: fc.nat(10),
    weekly: fc.nat(6),
    monthly: fc.nat(6),
  })
  fc.assert(
    fc.property(
      fc.uniqueArray(set, { selector: (s) => s.id, maxLength: 60 }),
      counts,
      counts,
      (sets, a, b) => {
        const more = {
          hourly: Math.max(a.hourly, b.hourly),
          daily: Math.max(a.daily, b.daily),
          weekly: Math.max(a.weekly, b.weekly),
          monthly: Math.max(a.monthly, b.monthly),
        }
        const small = retained(sets, a)
        const large = retained(sets, more)
        return (
          [...small].every((id) => large.has(id)) && sets.every((s) => s.kind !== 'manual' || small.has(s.id))
        )
      },
    ),
  )
  t.pass('the property holds')
})
