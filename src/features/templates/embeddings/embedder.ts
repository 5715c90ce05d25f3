// What every embedding provider is: the interface the template-embed job and search use, its error,
// and the helpers providers share.

export interface Embedder {
  provider: 'local' | 'http'
  /** Stored with each vector; search compares only vectors of the same model. */
  model: string
  /** Batch size the job uses (the http server's limit; the local one has none). */
  batchSize: number
  /** One unit-length vector per text, in order. Rejects with EmbeddingError on a bad reply. */
  embed(texts: string[], signal: AbortSignal, options?: EmbedOptions): Promise<number[][]>
}

/** A failed request the provider is about to try again. */
export interface EmbedRetry {
  /** The attempt that failed (1 for the first). */
  attempt: number
  maxAttempts: number
  delayMs: number
  reason: string
}

export interface EmbedOptions {
  /** Told before each retry (the http provider's), so a run can say why it is waiting. */
  onRetry?: (retry: EmbedRetry) => void
}

/** The provider could not give usable vectors (after its retries). */
export class EmbeddingError extends Error {
  override name = 'EmbeddingError'
  readonly code = 'embedding_failed'
}

/** Scales to unit length, so cosine similarity is a dot product; a zero vector stays zero. */
export function normalize(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0))
  return norm === 0 ? vector : vector.map((x) => x / norm)
}

/** What is embedded for a template: its name, then its text, bounded for servers' context limits. */
export function embeddingText(template: { name: string; body: string }, maxChars = 16_000): string {
  return `${template.name}\n\n${template.body}`.slice(0, maxChars)
}
