// Query embeddings search has computed recently, so a repeated search (a dashboard refresh, a
// client retrying, the next page of results) does not call the paid embeddings server again.
// Rules it keeps:
// - keyed by model and exact query text: another model's vector is another vector;
// - an entry lives ttlMs, and at most maxEntries are kept, the least recently used dropped first
//   (a Map iterates in insertion order; a hit is moved to the end);
// - concurrent identical searches share one call (the pending promise is the entry); a failed
//   call is forgotten at once, so the next search tries again;
// - per process, in memory: nothing to share or invalidate, a template's vectors are not cached.

export interface QueryCacheOptions {
  ttlMs: number
  maxEntries: number
  /** Milliseconds since the epoch; injectable so tests control time. */
  now?: () => number
}

interface Entry {
  vector: Promise<number[]>
  expiresAt: number
}

export function createQueryCache({ ttlMs, maxEntries, now = Date.now }: QueryCacheOptions) {
  const entries = new Map<string, Entry>()

  return {
    /** The cached vector of `text` under `model`, else `compute()`'s (cached if it succeeds). */
    async get(model: string, text: string, compute: () => Promise<number[]>): Promise<number[]> {
      // NUL cannot occur in a model name from the configuration; it keeps "a"+"b c" from "a b"+"c".
      const key = `${model}\u0000${text}`
      const at = now()
      const hit = entries.get(key)
      entries.delete(key)
      if (hit && hit.expiresAt > at) {
        entries.set(key, hit)
        return await hit.vector
      }
      const entry: Entry = { vector: compute(), expiresAt: at + ttlMs }
      entries.set(key, entry)
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries) break
        entries.delete(oldest)
      }
      try {
        return await entry.vector
      } catch (err) {
        if (entries.get(key) === entry) entries.delete(key)
        throw err
      }
    },

    get size(): number {
      return entries.size
    },
  }
}

export type QueryCache = ReturnType<typeof createQueryCache>
