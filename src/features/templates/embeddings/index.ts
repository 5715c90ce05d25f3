// Embedding providers behind one interface: `local` (lexical, no dependencies, the default) and
// `http` (any OpenAI-compatible /v1/embeddings server, chosen by setting EMBEDDINGS_URL).
import type { Config } from '../../../config.js'
import { createHttpEmbedder } from './http.js'
import { createLocalEmbedder } from './local.js'

export interface Embedder {
  provider: 'local' | 'http'
  /** Stored with each vector; search compares only vectors of the same model. */
  model: string
  /** Batch size the job uses (the http server's limit; the local one has none). */
  batchSize: number
  /** One unit-length vector per text, in order. Rejects with EmbeddingError on a bad reply. */
  embed(texts: string[], signal: AbortSignal): Promise<number[][]>
}

/** The provider could not give usable vectors (after its retries). */
export class EmbeddingError extends Error {
  override name = 'EmbeddingError'
  readonly code = 'embedding_failed'
}

export function createEmbedder(config: Config): Embedder {
  if (!config.embeddingsUrl) return createLocalEmbedder()
  return createHttpEmbedder({
    url: config.embeddingsUrl,
    model: config.embeddingsModel,
    apiKey: config.embeddingsApiKey,
    batchSize: config.embeddingsBatch,
  })
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
