// A short-lived cache of serialized pages (GET /runs), dropped whole the moment anything they show
// may have changed. Whoever owns it calls invalidate() on every change it hears of; the age limit
// bounds what it cannot hear of (a change made while the change feed was reconnecting, a delete).
// A page whose query was running when a change came in is not kept: it may predate the change.

export interface PageCacheOptions {
  /** How long a page may be served without a fresh query; 0 turns the cache off. */
  maxAgeMs: number
  maxEntries: number
  /** Milliseconds now; tests pass a controllable clock. */
  now?: () => number
}

export function createPageCache({ maxAgeMs, maxEntries, now = Date.now }: PageCacheOptions) {
  const pages = new Map<string, { body: string; at: number }>()
  let generation = 0

  return {
    /** The kept page for `key` (and 'hit'), or a freshly loaded one (and 'miss'). */
    async get(key: string, load: () => Promise<string>, fresh = false): Promise<[string, 'hit' | 'miss']> {
      const kept = pages.get(key)
      if (!fresh && kept && now() - kept.at < maxAgeMs) return [kept.body, 'hit']
      const before = generation
      const at = now()
      const body = await load()
      if (maxAgeMs > 0 && generation === before) {
        pages.delete(key)
        if (pages.size >= maxEntries) pages.delete(pages.keys().next().value as string)
        pages.set(key, { body, at })
      }
      return [body, 'miss']
    },

    invalidate(): void {
      generation++
      pages.clear()
    },

    size: () => pages.size,
  }
}

export type PageCache = ReturnType<typeof createPageCache>
