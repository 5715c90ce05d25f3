// Exponential backoff with jitter, shared by run retries and alert deliveries.

/**
 * Delay before retry attempt `attempt + 1`: min(max, base × 2^(attempt−1)), plus up to 25% jitter so
 * work that failed together does not retry in lock-step.
 */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const backoff = Math.min(maxMs, baseMs * 2 ** (attempt - 1))
  return Math.round(backoff * (1 + 0.25 * random()))
}
