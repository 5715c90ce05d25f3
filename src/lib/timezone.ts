// IANA time zone names, as the runtime knows them.

/** Whether `tz` names a time zone Intl (and so the scheduler) can compute in. */
export function isValidTimezone(tz: string): boolean {
  if (typeof tz !== 'string' || tz.trim() === '') return false
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz })
    return true
  } catch {
    return false
  }
}
