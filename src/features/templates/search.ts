// Search: embed the query with the configured provider, rank stored vectors of the same model.
import { type Embedder, EmbeddingError } from './embeddings/embedder.js'
import type { SearchHit } from './schemas.js'
import type { TemplatesService } from './store.js'

export interface SearchResult {
  items: SearchHit[]
  nextCursor: null
  model: string
}

/** The embeddings server failing is a bad gateway, not a bug here; the details go to the log. */
export class EmbeddingsUnavailable extends Error {
  override name = 'EmbeddingsUnavailable'
  readonly statusCode = 502
  readonly expose = true
}

export async function searchTemplates(
  templates: TemplatesService,
  embedder: Embedder,
  q: string,
  limit: number,
): Promise<SearchResult> {
  // A search request has no run to cancel it; bound it so a hung server cannot hold the request.
  const signal = AbortSignal.timeout(30_000)
  const [vector] = await embedder.embed([q], signal).catch((err: Error) => {
    if (err instanceof EmbeddingError || signal.aborted)
      throw new EmbeddingsUnavailable(`embedding the query failed: ${err.message}`, { cause: err })
    throw err
  })
  // A query with no words has a zero vector: everything would tie at 0, which is no answer.
  const items = vector?.some((x) => x !== 0) ? await templates.search(embedder.model, vector, limit) : []
  return { items, nextCursor: null, model: embedder.model }
}
