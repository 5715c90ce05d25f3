// Grandfather-father-son retention of backup sets, as a pure function of the sets and the keep
// counts (no clock, no I/O), so every instance and every test gets the same answer. Rules:
// - hourly: the newest `hourly` hourly sets;
// - daily: the newest `daily` daily sets;
// - weekly: of the daily sets, the newest one of each ISO week, for the newest `weekly` weeks that
//   have a daily set; monthly the same per calendar month for the newest `monthly` months;
// - manual sets are never pruned, and neither is a set whose date is invalid (it cannot be placed);
// - weeks and months are taken in UTC, so the answer does not depend on the server's time zone;
// - a set kept by any tier is kept; ties on createdAt are broken by id, newest first.

export type RetainedKind = 'hourly' | 'daily' | 'manual'

export interface RetainableSet {
  id: string
  kind: RetainedKind
  createdAt: Date
}

export interface KeepCounts {
  hourly: number
  daily: number
  weekly: number
  monthly: number
}

/**
 * The ISO 8601 week of a moment in UTC, as 'YYYY-Www'. ISO weeks start on Monday, and week 1 is the
 * week holding the year's first Thursday, so the week belongs to the year of its Thursday: Monday
 * 2024-12-30 is in 2025-W01 and Sunday 2027-01-03 is in 2026-W53. Hence: move to the Thursday of
 * the same Monday-to-Sunday week, take that Thursday's year, and count the weeks from January 1.
 */
export function isoWeek(date: Date): string {
  const thursday = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()))
  const isoDay = thursday.getUTCDay() || 7 // Monday 1 … Sunday 7
  thursday.setUTCDate(thursday.getUTCDate() + 4 - isoDay)
  const year = thursday.getUTCFullYear()
  const dayOfYear = (thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000
  const week = Math.floor(dayOfYear / 7) + 1
  return `${year}-W${String(week).padStart(2, '0')}`
}

/** The calendar month of a moment in UTC, as 'YYYY-MM'. */
export function utcMonth(date: Date): string {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, '0')}`
}

/** The ids of the sets to keep. */
export function retained(sets: readonly RetainableSet[], keep: KeepCounts): Set<string> {
  const newestFirst = sets.filter((s) => !undated(s)).sort(byNewest)
  const hourly = newestFirst.filter((s) => s.kind === 'hourly')
  const daily = newestFirst.filter((s) => s.kind === 'daily')
  const kept = [
    ...sets.filter((s) => s.kind === 'manual' || undated(s)),
    ...hourly.slice(0, count(keep.hourly)),
    ...daily.slice(0, count(keep.daily)),
    ...newestPerPeriod(daily, isoWeek, count(keep.weekly)),
    ...newestPerPeriod(daily, utcMonth, count(keep.monthly)),
  ]
  return new Set(kept.map((s) => s.id))
}

/** The sets retention may delete: every set not in `retained`, in the order given. */
export function prunable<S extends RetainableSet>(sets: readonly S[], keep: KeepCounts): S[] {
  const keepIds = retained(sets, keep)
  return sets.filter((s) => !keepIds.has(s.id))
}

/**
 * The first (newest) set of each period, for the first `periods` distinct periods. Expects sets
 * newest first, so periods are met newest first too.
 */
function newestPerPeriod(
  newestFirst: readonly RetainableSet[],
  periodOf: (date: Date) => string,
  periods: number,
): RetainableSet[] {
  const seen = new Set<string>()
  const picked: RetainableSet[] = []
  for (const set of newestFirst) {
    if (seen.size >= periods) break
    const period = periodOf(set.createdAt)
    if (seen.has(period)) continue
    seen.add(period)
    picked.push(set)
  }
  return picked
}

function undated(set: RetainableSet): boolean {
  return Number.isNaN(set.createdAt.getTime())
}

function byNewest(a: RetainableSet, b: RetainableSet): number {
  const byTime = b.createdAt.getTime() - a.createdAt.getTime()
  if (byTime !== 0) return byTime
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0
}

/** A keep count as a whole number of sets: negative or NaN keeps none. */
function count(n: number): number {
  return Number.isNaN(n) ? 0 : Math.max(0, Math.floor(n))
}
