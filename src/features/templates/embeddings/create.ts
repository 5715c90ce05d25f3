// Embedding providers behind one interface (./embedder.ts): `local` (lexical, no dependencies, the
// default) and `http` (any OpenAI-compatible /v1/embeddings server, chosen by setting EMBEDDINGS_URL).
import type { Config } from '../../../config.js'
import type { Embedder } from './embedder.js'
import { createHttpEmbedder } from './http.js'
import { createLocalEmbedder } from './local.js'

export function createEmbedder(config: Config): Embedder {
  if (!config.embeddingsUrl) return createLocalEmbedder()
  return createHttpEmbedder({
    url: config.embeddingsUrl,
    model: config.embeddingsModel,
    apiKey: config.embeddingsApiKey,
    batchSize: config.embeddingsBatch,
  })
}
