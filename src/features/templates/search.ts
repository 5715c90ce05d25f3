// Search: embed the query with the configured provider, rank stored vectors of the same model.
// Query vectors are cached briefly (query-cache.ts), so repeating a search costs no embeddings call;
// how often a token may search at all is the route's rate limit (TEMPLATE_SEARCH_PER_MINUTE).
import { type Embedder, EmbeddingError } from './embeddings/embedder.js'
import { createQueryCache, type QueryCache } from './query-cache.js'
import type { SearchHit } from './schemas.js'
import type { TemplatesService } from './store.js'

export interface SearchResult {
  items: SearchHit[]
  nextCursor: null
  model: string
}

/** Long enough to absorb refreshes and retries; short enough that a model swap is seen soon. */
export const QUERY_CACHE_TTL_MS = 60_000
/** Up to 500 queries of at most 500 characters and their vectors: a few MB at most. */
export const QUERY_CACHE_ENTRIES = 500

/** The embeddings server failing is a bad gateway, not a bug here; the details go to the log. */
export class EmbeddingsUnavailable extends Error {
  override name = 'EmbeddingsUnavailable'
  readonly statusCode = 502
  readonly expose = true
}

export function createTemplateSearch(
  templates: TemplatesService,
  embedder: Embedder,
  cache: QueryCache = createQueryCache({ ttlMs: QUERY_CACHE_TTL_MS, maxEntries: QUERY_CACHE_ENTRIES }),
) {
  /** One embeddings call for the query; its failure already in the form every waiter should see. */
  async function embedQuery(q: string): Promise<number[]> {
    // A search request has no run to cancel it; bound it so a hung server cannot hold the request.
    const signal = AbortSignal.timeout(30_000)
    try {
      const [vector] = await embedder.embed([q], signal)
      return vector ?? []
    } catch (err) {
      if (err instanceof EmbeddingError || signal.aborted)
        throw new EmbeddingsUnavailable(`embedding the query failed: ${(err as Error).message}`, {
          cause: err,
        })
      throw err
    }
  }

  return {
    async search(q: string, limit: number): Promise<SearchResult> {
      const vector = await cache.get(embedder.model, q, () => embedQuery(q))
      // A query with no words has a zero vector: everything would tie at 0, which is no answer.
      const items = vector.some((x) => x !== 0) ? await templates.search(embedder.model, vector, limit) : []
      return { items, nextCursor: null, model: embedder.model }
    },
  }
}

export type TemplateSearch = ReturnType<typeof createTemplateSearch>
