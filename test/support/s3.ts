// An in-process S3-compatible store (s3rver) on a random port with its own temporary directory and
// one empty bucket, for the remote-store tests. What to know about s3rver 3.7:
// - it only knows the access key id S3RVER (secret S3RVER); it checks the key id but does not verify
//   V4 signatures, so a wrong secret passes and only a wrong key id is refused;
// - use path-style URLs (forcePathStyle): virtual hosts need a *.amazonaws.com-like host name;
// - it has no TypeScript types, hence the small interface below and createRequire.
import fs from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

interface S3rverOptions {
  address: string
  port: number
  silent: boolean
  directory: string
  configureBuckets: { name: string }[]
}

interface S3rverServer {
  run(): Promise<AddressInfo>
  close(): Promise<void>
}

const require = createRequire(import.meta.url)
const S3rver = require('s3rver') as new (options: S3rverOptions) => S3rverServer

export const S3RVER_KEY = 'S3RVER'

export interface TestS3 {
  /** http://127.0.0.1:<port> */
  endpoint: string
  bucket: string
  accessKeyId: string
  secretAccessKey: string
  /** Stops the server (idempotent) and removes its directory. */
  close(): Promise<void>
}

/**
 * Starts a store with an empty bucket, on a random port or the one given (a store that comes back
 * where it was); with a test, it is closed at that test's teardown.
 */
export async function startS3(t?: Test, bucket = 'steward-test', atPort = 0): Promise<TestS3> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-s3-'))
  const server = new S3rver({
    address: '127.0.0.1',
    port: atPort,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  })
  const { port } = await server.run()
  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= server.close().finally(() => fs.rm(directory, { recursive: true, force: true }))
    return closing
  }
  t?.teardown(close)
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: S3RVER_KEY,
    secretAccessKey: S3RVER_KEY,
    close,
  }
}
