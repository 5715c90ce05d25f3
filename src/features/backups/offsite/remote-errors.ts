// What went wrong with the object store, in one line an operator can act on: unreachable, refused
// credentials, a missing bucket, or the SDK's own words; never a secret. Errors of the remote store
// are RemoteError, whose `code` names the operation and `reason` the cause.

/** The HTTP status of an SDK error, when it got that far. */
export function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode
}

export type RemoteReason = 'unreachable' | 'credentials' | 'no_bucket' | 'not_found' | 'integrity' | 'other'

/**
 * A failed store operation. `code` names the operation (`upload_failed`, `download_failed`, ...),
 * as BackupError codes do; `reason` says why. `retryable: false` when another attempt cannot do
 * better without someone changing the configuration.
 */
export class RemoteError extends Error {
  override name = 'RemoteError'
  readonly retryable: boolean
  constructor(
    readonly code: string,
    readonly reason: RemoteReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.retryable = reason !== 'credentials' && reason !== 'no_bucket'
  }

  static from(code: string, err: unknown, message: string): RemoteError {
    return new RemoteError(code, remoteReason(err), message, { cause: err })
  }
}

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AccessDenied',
  'CredentialsProviderError',
])
/** Node's codes for a host that cannot be reached or does not answer. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
])

interface SdkErrorShape {
  name?: string
  code?: string
  message?: string
  $metadata?: { httpStatusCode?: number }
}

export function remoteReason(err: unknown): RemoteReason {
  if (err instanceof RemoteError) return err.reason
  const e = (err ?? {}) as SdkErrorShape
  const name = e.name ?? ''
  if (CREDENTIAL_ERRORS.has(name) || statusOf(err) === 403) return 'credentials'
  if (name === 'NoSuchBucket') return 'no_bucket'
  if (name === 'NoSuchKey' || name === 'NotFound') return 'not_found'
  // A connect timeout from the SDK's HTTP handler is named TimeoutError and has no code.
  if (name === 'TimeoutError' || NETWORK_CODES.has(e.code ?? '')) return 'unreachable'
  return 'other'
}

/** One line saying why an operation on the store failed; SDK messages carry no secrets. */
export function describeRemoteError(err: unknown, bucket: string, endpoint?: string): string {
  const e = (err ?? {}) as SdkErrorShape
  const detail = e.message && e.message !== 'UnknownError' ? e.message : `HTTP ${statusOf(err) ?? '?'}`
  switch (remoteReason(err)) {
    case 'unreachable':
      return `object store ${endpoint ? `at ${endpoint} ` : ''}is unreachable: ${detail}`
    case 'credentials':
      if (e.name === 'CredentialsProviderError') {
        return `no credentials for the object store (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): ${detail}`
      }
      return `object store refused the credentials (${e.name && e.name !== 'Unknown' ? `${e.name}: ` : ''}${detail})`
    case 'no_bucket':
      return `bucket '${bucket}' does not exist`
    default:
      return detail
  }
}
