// Numbers, times and durations for people.

export const time = (iso) => (iso ? new Date(iso).toLocaleString() : '—')

/** A log line's time of day, to the millisecond: 14:03:07.125. */
export function clock(iso) {
  const d = new Date(iso)
  const pad = (n, width = 2) => String(n).padStart(width, '0')
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—'
  if (ms < 1000) return `${ms} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
}

/** A configured duration, in its own round unit when it has one (2 h, 30 min, 10 s). */
export function roundDuration(ms) {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ]) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`
  }
  return duration(ms)
}

/** A span of time, roughly: 45 s, 3 min 20 s, 2 h 5 min, 1 d 4 h. */
export function span(ms) {
  const s = Math.round(Math.abs(ms) / 1000)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`
}

export const relative = (ms) => (ms >= 0 ? `in ${span(ms)}` : `${span(ms)} ago`)

export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

/** An amount of a job's unit: bytes as bytes, anything else counted (12,345 rows). */
export const quantity = (n, unit) => (unit === 'bytes' ? bytes(n) : `${n.toLocaleString('en')} ${unit}`)

/** A share as a whole percentage, never 100 % before the end: 0.996 → 99%. */
export const percent = (share) => `${Math.min(100, Math.floor(Math.max(0, share) * 100))}%`
