// A short-lived cache of serialized pages (GET /runs), dropped whole the moment anything they show
// may have changed. Whoever owns it calls invalidate() on every change it hears of; the age limit
// bounds what it cannot hear of (a change made while the change feed was reconnecting, a delete).
// A page whose query was running when a change came in is not kept: it may predate the change.

export interface PageCacheOptions {
  /** How long a page may be served without a fresh query; 0 turns the cache off. */
  maxAgeMs: number
  maxEntries: number
  /** Pages larger than this are not kept, and all kept pages together stay under it. */
  maxChars: number
  /** Milliseconds now; tests pass a controllable clock. */
  now?: () => number
}

export function createPageCache({ maxAgeMs, maxEntries, maxChars, now = Date.now }: PageCacheOptions) {
  // In the order they were stored, so the oldest (and any expired ones) come first.
  const pages = new Map<string, { body: string; at: number }>()
  let generation = 0
  let chars = 0

  function drop(key: string): void {
    chars -= pages.get(key)?.body.length ?? 0
    pages.delete(key)
  }

  /** Drops expired pages, then the oldest until `room` more characters and one more page fit. */
  function makeRoom(room: number): void {
    for (const [key, page] of pages) {
      const expired = now() - page.at >= maxAgeMs
      if (!expired && pages.size < maxEntries && chars + room <= maxChars) break
      drop(key)
    }
  }

  return {
    /** The kept page for `key` (and 'hit'), or a freshly loaded one (and 'miss'). */
    async get(key: string, load: () => Promise<string>, fresh = false): Promise<[string, 'hit' | 'miss']> {
      const kept = pages.get(key)
      if (!fresh && kept && now() - kept.at < maxAgeMs) return [kept.body, 'hit']
      const before = generation
      const at = now()
      const body = await load()
      if (maxAgeMs > 0 && generation === before && body.length <= maxChars) {
        drop(key)
        makeRoom(body.length)
        pages.set(key, { body, at })
        chars += body.length
      }
      return [body, 'miss']
    },

    invalidate(): void {
      generation++
      pages.clear()
      chars = 0
    },

    size: () => ({ pages: pages.size, chars }),
  }
}

export type PageCache = ReturnType<typeof createPageCache>
