// The `http` embedding provider: any OpenAI-compatible server (`POST /v1/embeddings` with
// `{model, input}` → `{data: [{index, embedding}]}`). Retries 429 and 5xx with exponential backoff,
// honouring Retry-After; checks the reply's shape before a vector is trusted.
import { type Embedder, EmbeddingError, type EmbedOptions, normalize } from './embedder.js'

export interface HttpEmbedderOptions {
  /** Base URL, with or without a trailing /v1. */
  url: string
  model: string
  apiKey?: string
  batchSize: number
  /** Attempts per batch, the first included. */
  maxAttempts?: number
  baseDelayMs?: number
  requestTimeoutMs?: number
}

const MAX_DELAY_MS = 30_000

/** `http://host:8080`, `http://host:8080/` and `http://host:8080/v1` all mean the same endpoint. */
export function embeddingsEndpoint(url: string): string {
  const base = url.replace(/\/+$/, '')
  return `${base.endsWith('/v1') ? base : `${base}/v1`}/embeddings`
}

export function createHttpEmbedder(options: HttpEmbedderOptions): Embedder {
  const endpoint = embeddingsEndpoint(options.url)
  const maxAttempts = options.maxAttempts ?? 5
  const baseDelayMs = options.baseDelayMs ?? 500
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`

  async function embed(texts: string[], signal: AbortSignal, hooks?: EmbedOptions): Promise<number[][]> {
    const body = JSON.stringify({ model: options.model, input: texts })
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted()
      const timeout = AbortSignal.timeout(options.requestTimeoutMs ?? 120_000)
      const response = await fetch(endpoint, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.any([signal, timeout]),
      }).catch((err: Error) => {
        // The run's own abort wins; a refused connection or a timeout is worth retrying.
        signal.throwIfAborted()
        return err
      })
      const retryable = response instanceof Error || response.status === 429 || response.status >= 500
      if (!retryable) return await readVectors(response, texts.length)
      const why = response instanceof Error ? response.message : `HTTP ${response.status}`
      if (attempt >= maxAttempts)
        throw new EmbeddingError(`embeddings server failed ${attempt} times, last: ${why}`)
      if (!(response instanceof Error)) await response.body?.cancel()
      const delay = retryDelay(response instanceof Error ? null : response, attempt, baseDelayMs)
      hooks?.onRetry?.({ attempt, maxAttempts, delayMs: delay, reason: why })
      await sleep(delay, signal)
    }
  }

  return { provider: 'http', model: options.model, batchSize: options.batchSize, embed }
}

/** Retry-After (seconds or an HTTP date) when the server sends it, else exponential backoff. */
export function retryDelay(response: Response | null, attempt: number, baseDelayMs: number): number {
  const header = response?.headers.get('retry-after')
  if (header) {
    const seconds = Number(header)
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now()
    if (Number.isFinite(ms)) return Math.min(MAX_DELAY_MS, Math.max(0, ms))
  }
  return Math.min(MAX_DELAY_MS, baseDelayMs * 2 ** (attempt - 1))
}

async function readVectors(response: Response, count: number): Promise<number[][]> {
  const text = await response.text()
  if (!response.ok)
    throw new EmbeddingError(`embeddings server answered ${response.status}: ${text.slice(0, 200)}`)
  let reply: unknown
  try {
    reply = JSON.parse(text)
  } catch {
    throw new EmbeddingError('embeddings server answered with something that is not JSON')
  }
  const data = (reply as { data?: unknown })?.data
  if (!Array.isArray(data) || data.length !== count)
    throw new EmbeddingError(`malformed embeddings reply: expected data with ${count} items`)
  // Filled, not sparse: `some` below must see an index the reply left out.
  const vectors = Array.from({ length: count }, (): number[] | undefined => undefined)
  for (const [position, item] of data.entries()) {
    const { index = position, embedding } = (item ?? {}) as { index?: unknown; embedding?: unknown }
    const valid =
      Number.isInteger(index) &&
      (index as number) >= 0 &&
      (index as number) < count &&
      Array.isArray(embedding) &&
      embedding.length > 0 &&
      embedding.every((x) => typeof x === 'number' && Number.isFinite(x))
    if (!valid) throw new EmbeddingError(`malformed embeddings reply: item ${position} has no usable vector`)
    vectors[index as number] = normalize(embedding as number[])
  }
  const dimensions = vectors[0]?.length
  if (vectors.some((v) => v === undefined || v.length !== dimensions))
    throw new EmbeddingError('malformed embeddings reply: missing indexes or vectors of different lengths')
  return vectors as number[][]
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
