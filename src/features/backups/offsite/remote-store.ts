// Off-site copies of backup files on S3-compatible storage (BACKUP_REMOTE_URL=s3://bucket/prefix).
// Rules it keeps:
// - the AWS SDK is loaded with a dynamic import on first use, so a server without a remote store
//   never loads it;
// - credentials, region and endpoint come from the SDK's own environment variables
//   (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION);
//   options may override endpoint and region; the region defaults to us-east-1;
// - uploads stream the file in 8 MiB parts (never the whole file in memory) and count and hash the
//   bytes actually read; an upload counts only when those bytes, and the stored object's size and
//   sha256 metadata (HeadObject), match what the caller expects, else the object is removed again;
// - an unreachable store fails within seconds (5 s connect timeout, 3 attempts);
// - errors become RemoteError with a one-line reason that never includes a secret.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { pipeline, type Readable, Transform } from 'node:stream'
import type * as S3 from '@aws-sdk/client-s3'
import type * as Storage from '@aws-sdk/lib-storage'
import { describeRemoteError, RemoteError, statusOf } from './remote-errors.js'

const MiB = 1024 * 1024
/** S3 allows at most 10,000 parts; bigger files get bigger parts. */
const MAX_PARTS = 10_000
const PART_SIZE = 8 * MiB
/** Parts in flight at once: memory use is about (QUEUE_SIZE + 1) × part size. */
const QUEUE_SIZE = 2
/** DeleteObjects takes at most 1,000 keys per request. */
const DELETE_BATCH = 1000

export interface RemoteLogger {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

export interface RemoteStoreOptions {
  /** BACKUP_REMOTE_URL: s3://bucket/optional/prefix */
  url: string
  /** Path-style URLs (http://host/bucket/key), which most self-hosted stores need. */
  forcePathStyle?: boolean
  /** Overrides AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. */
  endpoint?: string
  /** Overrides AWS_REGION. */
  region?: string
  /** Explicit credentials instead of the SDK's provider chain (tests, embedding). */
  credentials?: { accessKeyId: string; secretAccessKey: string }
  /** Giving up on connecting; default 5 s. */
  connectionTimeoutMs?: number
  /** Giving up on a socket that has been silent this long; default 60 s. */
  socketTimeoutMs?: number
  logger?: RemoteLogger
}

export interface UploadExpectation {
  bytes: number
  sha256: string
  signal?: AbortSignal
}

export interface RemoteObject {
  bytes: number
  sha256?: string
  etag: string
  lastModified: Date
}

export interface RemoteListing {
  key: string
  bytes: number
  lastModified: Date
}

export interface RemoteDownload {
  stream: Readable
  /** Bytes in this response (the range's length for a range). */
  bytes: number
  /** Size of the whole object. */
  totalBytes: number
}

export interface RemoteStore {
  readonly bucket: string
  readonly prefix: string
  keyFor(relativePath: string): string
  upload(key: string, filePath: string, expected: UploadExpectation): Promise<void>
  head(key: string): Promise<RemoteObject | undefined>
  /** `range` is inclusive on both ends, as in an HTTP Range header. */
  download(key: string, range?: { start: number; end: number }): Promise<RemoteDownload>
  delete(key: string): Promise<void>
  /** Removes every object under `prefix/` (a whole set); returns how many. */
  deletePrefix(prefix: string): Promise<number>
  list(prefix: string): Promise<RemoteListing[]>
  /** Releases the client's sockets; the store is not used afterwards. */
  close(): void
}

/** Splits s3://bucket/some/prefix into its bucket and a prefix without outer slashes. */
export function parseRemoteUrl(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]*)(.*)$/i.exec(url.trim())
  if (!match) throw new Error('BACKUP_REMOTE_URL must look like s3://bucket/optional/prefix')
  const bucket = match[1] ?? ''
  if (!bucket) throw new Error('BACKUP_REMOTE_URL names no bucket (expected s3://bucket/optional/prefix)')
  // Also refuses s3://key:secret@bucket, so credentials never sit in the URL (or in a message).
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket)) {
    throw new Error('BACKUP_REMOTE_URL has an invalid bucket name (lowercase letters, digits, dots, dashes)')
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '')
  return { bucket, prefix }
}

type Sdk = { s3: typeof S3; storage: typeof Storage }
let sdkLoading: Promise<Sdk> | undefined

function loadSdk(): Promise<Sdk> {
  sdkLoading ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(
    ([s3, storage]) => ({ s3, storage }),
    (err) => {
      sdkLoading = undefined
      throw err
    },
  )
  return sdkLoading
}

/** The endpoint for messages: scheme, host and path only, so no userinfo or query leaks. */
function endpointLabel(options: RemoteStoreOptions, region: string): string {
  const raw = options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL
  if (!raw) return `https://s3.${region}.amazonaws.com`
  try {
    const u = new URL(raw)
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`
  } catch {
    return '(invalid endpoint URL)'
  }
}

export function createRemoteStore(options: RemoteStoreOptions): RemoteStore {
  const { bucket, prefix } = parseRemoteUrl(options.url)
  const region = options.region ?? process.env.AWS_REGION ?? 'us-east-1'
  const endpoint = endpointLabel(options, region)
  let client: S3.S3Client | undefined

  async function connect(): Promise<{ sdk: Sdk; client: S3.S3Client }> {
    const sdk = await loadSdk()
    client ??= new sdk.s3.S3Client({
      region,
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: 3,
      requestHandler: {
        connectionTimeout: options.connectionTimeoutMs ?? 5000,
        socketTimeout: options.socketTimeoutMs ?? 60_000,
      },
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
    })
    return { sdk, client }
  }

  /** Runs one store operation, turning whatever it throws into a RemoteError. */
  async function attempt<T>(code: string, run: (sdk: Sdk, client: S3.S3Client) => Promise<T>): Promise<T> {
    try {
      const { sdk, client } = await connect()
      return await run(sdk, client)
    } catch (err) {
      if (err instanceof RemoteError) throw err
      throw RemoteError.from(code, err, describeRemoteError(err, bucket, endpoint))
    }
  }

  async function head(key: string, code = 'remote_head_failed'): Promise<RemoteObject | undefined> {
    return attempt(code, async ({ s3 }, c) => {
      try {
        const out = await c.send(new s3.HeadObjectCommand({ Bucket: bucket, Key: key }))
        return {
          bytes: out.ContentLength ?? 0,
          sha256: out.Metadata?.sha256,
          etag: out.ETag ?? '',
          lastModified: out.LastModified ?? new Date(0),
        }
      } catch (err) {
        // A HEAD response has no body, so a missing bucket also reads as NotFound here.
        if (statusOf(err) === 404) return undefined
        throw err
      }
    })
  }

  async function remove(key: string): Promise<void> {
    await attempt('remote_delete_failed', ({ s3 }, c) =>
      c.send(new s3.DeleteObjectCommand({ Bucket: bucket, Key: key })),
    )
  }

  /** Removes an object that failed its checks; a failure here is only logged. */
  async function discard(key: string): Promise<void> {
    await remove(key).catch((err: Error) =>
      options.logger?.warn({ key, err: err.message }, 'could not remove a failed remote upload'),
    )
  }

  async function upload(key: string, filePath: string, expected: UploadExpectation): Promise<void> {
    const { signal } = expected
    signal?.throwIfAborted()
    const started = Date.now()
    const sending = attempt('upload_failed', (sdk, c) => send(sdk, c, key, filePath, expected))
    const read = await sending.catch((err) => {
      // A cancelled upload fails with the signal's reason, as the other backup steps do.
      signal?.throwIfAborted()
      throw err
    })
    const mismatch = compare(read, expected) ?? compare(await storedFacts(key), expected)
    if (mismatch) {
      await discard(key)
      const message = `remote copy of ${key} failed its check: ${mismatch}`
      throw new RemoteError('upload_failed', 'integrity', message)
    }
    options.logger?.info({ key, bytes: read.bytes, ms: Date.now() - started }, 'uploaded backup file')
  }

  async function storedFacts(key: string): Promise<{ bytes: number; sha256?: string }> {
    const stored = await head(key, 'upload_failed')
    if (!stored) throw new RemoteError('upload_failed', 'integrity', `remote copy of ${key} is missing`)
    return stored
  }

  async function send(sdk: Sdk, c: S3.S3Client, key: string, filePath: string, expected: UploadExpectation) {
    // Checked again, as loading the SDK took a while; from here no await before the listener.
    expected.signal?.throwIfAborted()
    const meter = new HashingMeter()
    // pipeline() destroys the meter with a read error, so the upload fails with it.
    pipeline(createReadStream(filePath), meter, () => {})
    const partSize = Math.max(PART_SIZE, Math.ceil(expected.bytes / MAX_PARTS))
    const params = { Bucket: bucket, Key: key, Body: meter, Metadata: { sha256: expected.sha256 } }
    const upload = new sdk.storage.Upload({ client: c, params, partSize, queueSize: QUEUE_SIZE })
    const onAbort = () => void upload.abort()
    expected.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await upload.done()
    } finally {
      expected.signal?.removeEventListener('abort', onAbort)
      meter.destroy()
    }
    return { bytes: meter.bytes, sha256: meter.digest() }
  }

  async function download(key: string, range?: { start: number; end: number }): Promise<RemoteDownload> {
    return attempt('download_failed', async ({ s3 }, c) => {
      const Range = range ? `bytes=${range.start}-${range.end}` : undefined
      const out = await c.send(new s3.GetObjectCommand({ Bucket: bucket, Key: key, Range }))
      const bytes = out.ContentLength ?? 0
      const total = /\/(\d+)$/.exec(out.ContentRange ?? '')?.[1]
      return { stream: out.Body as Readable, bytes, totalBytes: total ? Number(total) : bytes }
    })
  }

  async function list(under: string): Promise<RemoteListing[]> {
    return attempt('remote_list_failed', async ({ s3 }, c) => {
      const found: RemoteListing[] = []
      let token: string | undefined
      do {
        const input = { Bucket: bucket, Prefix: under, ContinuationToken: token }
        const page = await c.send(new s3.ListObjectsV2Command(input))
        for (const { Key: key, Size, LastModified } of page.Contents ?? []) {
          if (key) found.push({ key, bytes: Size ?? 0, lastModified: LastModified ?? new Date(0) })
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (token)
      return found
    })
  }

  async function deletePrefix(setPrefix: string): Promise<number> {
    const dir = `${setPrefix.replace(/\/+$/, '')}/`
    // Never the whole bucket or anything outside this store's prefix.
    if (dir === '/' || (prefix && !dir.startsWith(`${prefix}/`))) {
      throw new RemoteError('remote_delete_failed', 'other', `not a set's prefix: '${setPrefix}'`)
    }
    const keys = (await list(dir)).map((o) => o.key)
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      await deleteBatch(keys.slice(i, i + DELETE_BATCH))
    }
    return keys.length
  }

  async function deleteBatch(keys: string[]): Promise<void> {
    await attempt('remote_delete_failed', async ({ s3 }, c) => {
      const Delete = { Objects: keys.map((Key) => ({ Key })), Quiet: true }
      const out = await c.send(new s3.DeleteObjectsCommand({ Bucket: bucket, Delete }))
      const failed = out.Errors?.[0]
      if (failed) {
        const why = `${failed.Code ?? 'error'}: ${failed.Message ?? ''}`
        throw new RemoteError('remote_delete_failed', 'other', `could not delete ${failed.Key}: ${why}`)
      }
    })
  }

  return {
    bucket,
    prefix,
    keyFor: (relativePath) => keyFor(prefix, relativePath),
    upload,
    head: (key) => head(key),
    download,
    delete: remove,
    deletePrefix,
    list,
    close: () => client?.destroy(),
  }
}

function keyFor(prefix: string, relativePath: string): string {
  const rel = relativePath.replaceAll('\\', '/').replace(/^\/+/, '')
  if (!rel || rel.split('/').some((part) => part === '..' || part === '.')) {
    throw new Error(`not a relative backup path: '${relativePath}'`)
  }
  return prefix ? `${prefix}/${rel}` : rel
}

/** Why an upload's facts differ from the expected ones, or undefined when they match. */
function compare(actual: { bytes: number; sha256?: string }, expected: UploadExpectation) {
  if (actual.bytes !== expected.bytes) return `${actual.bytes} bytes, expected ${expected.bytes}`
  if (actual.sha256 === expected.sha256) return undefined
  return `sha256 ${actual.sha256 ?? '(none)'}, expected ${expected.sha256}`
}

/** Passes bytes through unchanged, counting and hashing them on the way. */
class HashingMeter extends Transform {
  bytes = 0
  private readonly hash = createHash('sha256')

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.bytes += chunk.length
    this.hash.update(chunk)
    this.push(chunk)
    done()
  }

  digest(): string {
    return this.hash.digest('hex')
  }
}
