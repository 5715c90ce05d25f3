// Cron expressions: the one place they are parsed, validated and evaluated.
//
// Parsing and validation are ours, so that crontab(5) syntax is accepted and errors name the field at
// fault. Evaluation is node-cron's matcher, the one its own scheduler fires by, DST handling
// included; the scheduler (scheduler.ts) times fires from it and from the database, not with one
// node-cron task per schedule. node-cron ANDs day-of-month with
// day-of-week, whereas crontab ORs them when both are restricted; we get the crontab behaviour by
// splitting such an expression into two node-cron patterns and merging their fires.
//
// DST, as node-cron 4.6 does it (pinned by test/cron.test.ts):
// - A local time that does not exist (spring forward) is skipped for that day: "30 2 * * *" does not
//   fire on the change day in New York. Vixie cron would run it just after the jump.
// - Each local wall-clock time fires once when the clock falls back, even for wildcard-hour schedules,
//   so "*/15 * * * *" pauses for the repeated hour. West of UTC the first pass fires, east of UTC
//   (e.g. Europe/Berlin) the second.

import { type CronFieldError, createTask, type Logger, validateDetailed } from 'node-cron'
import { isValidTimezone } from '../lib/timezone.js'

export type CronField =
  | 'expression'
  | 'second'
  | 'minute'
  | 'hour'
  | 'dayOfMonth'
  | 'month'
  | 'dayOfWeek'
  | 'timezone'

/** A cron expression or timezone that cannot be used; `message` is meant for the person who wrote it. */
export class CronError extends Error {
  readonly field: CronField

  constructor(field: CronField, message: string) {
    super(message)
    this.name = 'CronError'
    this.field = field
  }
}

export interface CronSchedule {
  readonly expression: string
  readonly timezone: string
  /** The node-cron pattern(s): one, or two when day-of-month and day-of-week are OR-ed. */
  readonly patterns: readonly string[]
  /** The first fire strictly after `after`. */
  next(after: Date): Date
  /** The next `count` fires strictly after `after` (default: now), ascending. */
  nextRuns(count: number, after?: Date): Date[]
  /** The latest `limit` fires in (from, to], ascending. */
  between(from: Date, to: Date, limit: number): Date[]
}

/**
 * Upper bound on next-run evaluations per call. One evaluation costs ~30-70 µs (node-cron formats
 * dates through Intl), so this caps a call at a few seconds of CPU.
 */
const MAX_EVALUATIONS = 100_000

/** The app logs through pino; node-cron's default logger would write straight to the console. */
const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} }

// ---------------------------------------------------------------------------------------------
// Fields

type TimeField = Exclude<CronField, 'expression' | 'timezone'>

interface FieldSpec {
  readonly key: TimeField
  readonly label: string
  readonly min: number
  readonly max: number
  readonly names?: Readonly<Record<string, number>>
}

const nameMap = (names: string[], first: number) =>
  Object.fromEntries(names.map((name, i) => [name, first + i]))

const SECOND: FieldSpec = { key: 'second', label: 'second', min: 0, max: 59 }
const MINUTE: FieldSpec = { key: 'minute', label: 'minute', min: 0, max: 59 }
const HOUR: FieldSpec = { key: 'hour', label: 'hour', min: 0, max: 23 }
const DAY_OF_MONTH: FieldSpec = { key: 'dayOfMonth', label: 'day-of-month', min: 1, max: 31 }
const MONTH: FieldSpec = {
  key: 'month',
  label: 'month',
  min: 1,
  max: 12,
  names: nameMap(['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'], 1),
}
// 7 is Sunday too, as in crontab(5); node-cron maps it to 0.
const DAY_OF_WEEK: FieldSpec = {
  key: 'dayOfWeek',
  label: 'day-of-week',
  min: 0,
  max: 7,
  names: nameMap(['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'], 0),
}

const FIVE_FIELDS = [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK] as const
const SIX_FIELDS = [SECOND, ...FIVE_FIELDS] as const

const NICKNAMES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
}

const fieldError = (spec: FieldSpec, message: string) =>
  new CronError(spec.key, `${spec.label} field: ${message}`)

/** Splits an expression (or nickname) into its 5 or 6 fields. */
function splitFields(expression: string): string[] {
  const trimmed = expression.trim()
  if (trimmed === '') throw new CronError('expression', 'expression is empty')
  if (trimmed.startsWith('@')) {
    const resolved = NICKNAMES[trimmed.toLowerCase()]
    if (!resolved) {
      const known = Object.keys(NICKNAMES).join(', ')
      throw new CronError('expression', `unknown nickname "${trimmed}"; use one of ${known}`)
    }
    return resolved.split(' ')
  }
  const fields = trimmed.split(/\s+/)
  if (fields.length !== 5 && fields.length !== 6) {
    throw new CronError(
      'expression',
      `expected 5 or 6 fields (minute hour day-of-month month day-of-week), got ${fields.length}`,
    )
  }
  return fields
}

/** Rewrites one field into the subset of syntax node-cron understands (numbers, ranges, steps, L). */
function normaliseField(spec: FieldSpec, raw: string): string {
  if (raw === '?') {
    if (spec === DAY_OF_MONTH || spec === DAY_OF_WEEK) return '*'
    throw fieldError(spec, '"?" is only allowed in the day-of-month and day-of-week fields')
  }
  return raw
    .split(',')
    .map((item) => normaliseItem(spec, item))
    .join(',')
}

function normaliseItem(spec: FieldSpec, item: string): string {
  if (item === '') throw fieldError(spec, 'empty list item (look for a doubled or trailing comma)')
  if (item.toUpperCase() === 'L') {
    if (spec === DAY_OF_MONTH) return 'L'
    throw fieldError(spec, '"L" (last day of the month) is only allowed in the day-of-month field')
  }
  const [range = '', stepText, ...extra] = item.split('/')
  if (extra.length > 0) throw fieldError(spec, `"${item}" has more than one step`)
  const step = stepText === undefined ? '' : `/${parseStep(spec, stepText)}`
  if (range === '*') return `*${step}`

  const [firstText = '', lastText, ...more] = range.split('-')
  if (more.length > 0) throw fieldError(spec, `"${item}" is not a valid value, range or step`)
  const first = parseValue(spec, firstText, item)
  if (lastText === undefined) {
    // crontab's "a/n" means "from a to the end of the field, every n"; node-cron only knows "a-b/n".
    return step ? `${first}-${spec.max}${step}` : String(first)
  }
  const last = parseValue(spec, lastText, item)
  if (first > last) throw backwardsRange(spec, range, first, last)
  return `${first}-${last}${step}`
}

function parseValue(spec: FieldSpec, text: string, item: string): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text)
    if (value < spec.min || value > spec.max) {
      throw fieldError(spec, `${value} is out of range ${spec.min}-${spec.max}`)
    }
    return value
  }
  if (text === '') throw fieldError(spec, `"${item}" is not a valid value, range or step`)
  const named = spec.names?.[text.toUpperCase()]
  if (named !== undefined) return named
  throw fieldError(spec, spec.names ? `"${text}" is not a number or name` : `"${text}" is not a number`)
}

function parseStep(spec: FieldSpec, text: string): number {
  if (!/^\d+$/.test(text)) throw fieldError(spec, `step "${text}" is not a number`)
  const step = Number(text)
  if (step === 0) throw fieldError(spec, 'step 0 is not allowed')
  // A step wider than the field matches once, which is never what "*/90 minutes" meant.
  const widest = spec.max - spec.min
  if (step > widest) throw fieldError(spec, `step ${step} is too large; it must be 1-${widest}`)
  return step
}

// node-cron would wrap "22-2" around midnight; crontab has no wraparound, and a backwards range is
// more often a typo than a wish, so we refuse it and show how to say it explicitly.
function backwardsRange(spec: FieldSpec, range: string, first: number, last: number): CronError {
  const top = spec === DAY_OF_WEEK ? 6 : spec.max
  const explicit = `${first}-${top},${spec.min}-${last}`
  return fieldError(spec, `range ${range} is backwards (ranges cannot wrap around; write ${explicit})`)
}

/** Vixie cron's rule: a day field is unrestricted when it starts with "*" or is "?". */
const isRestricted = (raw: string) => !raw.startsWith('*') && raw !== '?'

/**
 * The node-cron patterns for the fields. When day-of-month and day-of-week are both restricted,
 * crontab fires when EITHER matches, but node-cron requires both; so we return one pattern per
 * day field (the other set to "*") and take the union of their fires.
 */
function toPatterns(raw: string[], normalised: string[]): string[] {
  const dom = normalised.length - 3
  const dow = normalised.length - 1
  if (!isRestricted(raw[dom] ?? '*') || !isRestricted(raw[dow] ?? '*')) return [normalised.join(' ')]
  const withDayOfMonth = normalised.map((field, i) => (i === dow ? '*' : field))
  const withDayOfWeek = normalised.map((field, i) => (i === dom ? '*' : field))
  return [withDayOfMonth.join(' '), withDayOfWeek.join(' ')]
}

/**
 * Runs node-cron's own validator over a pattern we built, as a backstop: it knows things our
 * field-by-field checks do not, such as "0 0 31 2 *" never firing.
 */
function checkWithNodeCron(pattern: string, raw: string[]): void {
  const result = validateDetailed(pattern)
  const error = result.errors[0]
  if (result.valid || !error) return
  throw translateNodeCronError(error, raw)
}

function translateNodeCronError(error: CronFieldError, raw: string[]): CronError {
  if (error.field === 'dayOfMonth' && error.message.includes('impossible')) {
    const dom = raw[raw.length - 3]
    const month = raw[raw.length - 2]
    return new CronError(
      'dayOfMonth',
      `day-of-month field: ${dom} never occurs in month ${month}, so it would never fire`,
    )
  }
  const spec = SIX_FIELDS.find((s) => s.key === error.field)
  if (!spec) return new CronError('expression', `node-cron rejected the expression: ${error.message}`)
  return fieldError(spec, `"${error.value ?? ''}" was rejected by node-cron: ${error.message}`)
}

// ---------------------------------------------------------------------------------------------
// Evaluation through node-cron's matcher

/**
 * The matcher node-cron's scheduler uses to find its next fire. The public `getNextRuns()` always
 * starts from the current time, so we reach for the task's `timeMatcher` field instead. It is
 * present at runtime on node-cron 4's tasks but absent from the .d.ts, hence this narrow interface.
 */
interface NodeCronMatcher {
  /** The first match strictly after `from`, at whole-second resolution. */
  getNextMatch(from: Date): Date
}

// Making a node-cron task costs ~5 ms; schedules share a few patterns, so matchers are kept, within
// a bound (an operator with more distinct pattern and timezone pairs than this just rebuilds some).
const matchers = new Map<string, NodeCronMatcher>()
const MATCHERS_KEPT = 1000

function matcherFor(pattern: string, timezone: string): NodeCronMatcher {
  const key = `${timezone} ${pattern}`
  let matcher = matchers.get(key)
  if (!matcher) {
    matcher = newMatcher(pattern, timezone)
    if (matchers.size >= MATCHERS_KEPT) matchers.clear()
    matchers.set(key, matcher)
  }
  return matcher
}

function newMatcher(pattern: string, timezone: string): NodeCronMatcher {
  const task = createTask(pattern, () => {}, { timezone, logger: silentLogger })
  const matcher = (task as unknown as { timeMatcher?: Partial<NodeCronMatcher> }).timeMatcher
  // createTask adds every task to node-cron's global registry; destroying it removes it again
  // (the matcher stays usable), so parsing does not leak tasks.
  void task.destroy()
  if (typeof matcher?.getNextMatch !== 'function') {
    throw new Error(
      'node-cron tasks no longer expose timeMatcher.getNextMatch(); src/engine/cron.ts needs updating',
    )
  }
  return matcher as NodeCronMatcher
}

// Probe at load, so a node-cron upgrade that drops the field fails at startup and in tests.
newMatcher('* * * * *', 'UTC')

function assertDate(value: Date, name: string): void {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new TypeError(`${name} must be a valid Date`)
  }
}

function assertCount(value: number, name: string, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${value}`)
  }
}

class NodeCronSchedule implements CronSchedule {
  constructor(
    readonly expression: string,
    readonly timezone: string,
    readonly patterns: readonly string[],
    private readonly matchers: readonly NodeCronMatcher[],
  ) {}

  next(after: Date): Date {
    assertDate(after, 'after')
    return this.nextAfter(after.getTime())
  }

  nextRuns(count: number, after: Date = new Date()): Date[] {
    assertDate(after, 'after')
    assertCount(count, 'count', MAX_EVALUATIONS)
    const runs: Date[] = []
    let from = after.getTime()
    while (runs.length < count) {
      const run = this.nextAfter(from)
      runs.push(run)
      from = run.getTime()
    }
    return runs
  }

  // Walking every fire from `from` would cost O(fires in range): a day of a per-second schedule is
  // ~86 400 evaluations, several seconds of CPU. Instead we bisect for the latest start that still
  // leaves `limit` fires before `to`, each probe walking at most `limit` fires, so the cost is
  // O(limit × log2(range in seconds)). Every evaluation counts against MAX_EVALUATIONS.
  between(from: Date, to: Date, limit: number): Date[] {
    assertDate(from, 'from')
    assertDate(to, 'to')
    // A huge limit is fine ("all of them") as long as the range holds few fires; the budget guards the rest.
    assertCount(limit, 'limit', Number.MAX_SAFE_INTEGER)
    const budget = { left: MAX_EVALUATIONS }
    const end = to.getTime()
    let lo = from.getTime()
    const earliest = this.firesIn(lo, end, limit, budget)
    if (earliest.length < limit) return earliest
    // Invariant: (lo, end] holds at least `limit` fires and (hi, end] fewer. Fires fall on whole
    // seconds, so once hi - lo <= 1 s, (lo, end] holds exactly `limit`.
    let hi = end
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2)
      if (this.firesIn(mid, end, limit, budget).length === limit) lo = mid
      else hi = mid
    }
    return this.firesIn(lo, end, limit, budget)
  }

  /** The first `max` fires in (afterMs, toMs]. */
  private firesIn(afterMs: number, toMs: number, max: number, budget: { left: number }): Date[] {
    const fires: Date[] = []
    let from = afterMs
    while (fires.length < max) {
      if (--budget.left < 0) {
        throw new RangeError(
          `between(): gave up after ${MAX_EVALUATIONS} next-run evaluations of "${this.expression}"; ask for a smaller limit`,
        )
      }
      const fire = this.nextAfter(from)
      if (fire.getTime() > toMs) break
      fires.push(fire)
      from = fire.getTime()
    }
    return fires
  }

  /** The earliest next match across the (one or two) patterns. */
  private nextAfter(fromMs: number): Date {
    const from = new Date(fromMs)
    let earliest: Date | undefined
    for (const matcher of this.matchers) {
      const candidate = matcher.getNextMatch(from)
      if (!earliest || candidate < earliest) earliest = candidate
    }
    if (!earliest) throw new Error('schedule has no patterns')
    return earliest
  }
}

/**
 * Parsed expressions, which are immutable: schedules often share one, and the scheduler evaluates a
 * schedule's expression at each of its fires. Parsing costs ~0.2 ms (node-cron builds a task).
 */
const parsed = new Map<string, CronSchedule>()
const PARSED_MAX = 5000

/** Parses and validates `expression` for `timezone` (IANA name). Throws CronError. */
export function parseCron(expression: string, timezone: string): CronSchedule {
  if (typeof expression !== 'string') throw new CronError('expression', 'expression must be a string')
  const key = `${timezone}\n${expression}`
  const known = parsed.get(key)
  if (known) return known
  const schedule = parseUncached(expression, timezone)
  if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value as string)
  parsed.set(key, schedule)
  return schedule
}

function parseUncached(expression: string, timezone: string): CronSchedule {
  if (!isValidTimezone(timezone)) throw new CronError('timezone', `unknown timezone "${timezone}"`)
  const raw = splitFields(expression)
  const specs = raw.length === 6 ? SIX_FIELDS : FIVE_FIELDS
  const normalised = raw.map((field, i) => normaliseField(specs[i] as FieldSpec, field))
  const patterns = toPatterns(raw, normalised)
  for (const pattern of patterns) checkWithNodeCron(pattern, raw)
  const matchers = patterns.map((pattern) => matcherFor(pattern, timezone))
  return new NodeCronSchedule(expression, timezone, Object.freeze(patterns), matchers)
}
