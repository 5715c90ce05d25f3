// Tests for src/engine/cron.ts (and src/lib/timezone.ts): validation messages, evaluation against an independent
// implementation (cron-parser), the DST corners where the two legitimately differ, and between().
// Firing is the scheduler's (test/schedules.test.ts, test/cluster.test.ts).
import { CronExpressionParser } from 'cron-parser'
import { getTasks } from 'node-cron'
import t from 'tap'
import { CronError, type CronSchedule, parseCron } from '../src/engine/cron.js'
import { isValidTimezone } from '../src/lib/timezone.js'

const iso = (dates: Date[]) => dates.map((d) => d.toISOString())
const at = (text: string) => new Date(text)

/** cron-parser's next `count` fires strictly after `after`, as ISO strings. */
function cronParserRuns(expression: string, tz: string, after: Date, count: number): string[] {
  const parsed = CronExpressionParser.parse(expression, { currentDate: after, tz })
  return Array.from({ length: count }, () => parsed.next().toDate().toISOString())
}

const ourRuns = (expression: string, tz: string, after: Date, count: number) =>
  iso(parseCron(expression, tz).nextRuns(count, after))

t.test('validation names the field at fault', async (t) => {
  const cases: Array<[expression: string, field: string, message: string | RegExp]> = [
    ['61 * * * *', 'minute', 'minute field: 61 is out of range 0-59'],
    ['0 25 * * *', 'hour', 'hour field: 25 is out of range 0-23'],
    ['* * * *', 'expression', 'expected 5 or 6 fields (minute hour day-of-month month day-of-week), got 4'],
    [
      '* * * * * * *',
      'expression',
      'expected 5 or 6 fields (minute hour day-of-month month day-of-week), got 7',
    ],
    ['0 5-2 * * *', 'hour', /^hour field: range 5-2 is backwards \(.*5-23,0-2/],
    ['*/0 * * * *', 'minute', 'minute field: step 0 is not allowed'],
    ['0 0 * * FOO', 'dayOfWeek', 'day-of-week field: "FOO" is not a number or name'],
    ['0 0 31 2 *', 'dayOfMonth', /^day-of-month field: 31 never occurs in month 2/],
    ['60 * * * * *', 'second', 'second field: 60 is out of range 0-59'],
    ['0 0 0 * *', 'dayOfMonth', 'day-of-month field: 0 is out of range 1-31'],
    ['0 0 * 13 *', 'month', 'month field: 13 is out of range 1-12'],
    ['0 0 * * 8', 'dayOfWeek', 'day-of-week field: 8 is out of range 0-7'],
    ['0 0 * FOO *', 'month', 'month field: "FOO" is not a number or name'],
    ['x * * * *', 'minute', 'minute field: "x" is not a number'],
    ['*/60 * * * *', 'minute', 'minute field: step 60 is too large; it must be 1-59'],
    ['1,,2 * * * *', 'minute', /^minute field: empty list item/],
    ['1-2-3 * * * *', 'minute', 'minute field: "1-2-3" is not a valid value, range or step'],
    ['? * * * *', 'minute', /^minute field: "\?" is only allowed in the day-of-month and day-of-week fields/],
    ['0 0 * * L', 'dayOfWeek', /^day-of-week field: "L" .* only allowed in the day-of-month field/],
    ['0 0 15W * *', 'dayOfMonth', 'day-of-month field: "15W" is not a number'],
    ['', 'expression', 'expression is empty'],
    ['@reboot', 'expression', /^unknown nickname "@reboot"; use one of @yearly/],
  ]
  for (const [expression, field, message] of cases) {
    t.throws(
      () => parseCron(expression, 'UTC'),
      { name: 'CronError', field, message },
      JSON.stringify(expression),
    )
  }
  t.throws(() => parseCron('* * * * *', 'Mars/Base'), {
    field: 'timezone',
    message: 'unknown timezone "Mars/Base"',
  })
  t.throws(() => parseCron('61 * * * *', 'UTC'), CronError, 'errors are CronError instances')
  t.throws(() => parseCron('61 * * * *', 'UTC'), Error)
})

t.test('isValidTimezone', async (t) => {
  for (const tz of ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe'])
    t.ok(isValidTimezone(tz), tz)
  for (const tz of ['Mars/Base', '', ' ', 'Europe/Nowhere']) t.notOk(isValidTimezone(tz), JSON.stringify(tz))
})

t.test('patterns handed to node-cron', async (t) => {
  const cases: Array<[expression: string, patterns: string[]]> = [
    ['*/5 * * * *', ['*/5 * * * *']],
    ['0 9-17 * jan,Jul mon-FRI', ['0 9-17 * 1,7 1-5']],
    ['5/20 * * * *', ['5-59/20 * * * *']], // "a/n" means a to the end of the field
    ['0 0 ? * SUN', ['0 0 * * 0']],
    ['0 0 * * 7', ['0 0 * * 7']], // node-cron reads 7 as Sunday itself
    ['0 0 L * *', ['0 0 L * *']],
    ['@weekly', ['0 0 * * 0']],
    ['0 0 1 * 1', ['0 0 1 * *', '0 0 * * 1']], // both day fields restricted: OR, as two patterns
    ['0 12 1,15 * FRI', ['0 12 1,15 * *', '0 12 * * 5']],
    ['*/10 0 0 L * 1-5', ['*/10 0 0 L * *', '*/10 0 0 * * 1-5']],
    ['0 0 */2 * 1', ['0 0 */2 * 1']], // a day field starting with "*" counts as unrestricted: AND
    ['0 0 1 * ?', ['0 0 1 * *']],
  ]
  for (const [expression, patterns] of cases) {
    const schedule = parseCron(expression, 'UTC')
    t.same(schedule.patterns, patterns, expression)
    t.equal(schedule.expression, expression)
    t.equal(schedule.timezone, 'UTC')
  }
})

t.test('parsing leaves no tasks in node-cron’s global registry', async (t) => {
  const before = getTasks().size
  for (let i = 0; i < 5; i++) parseCron('0 0 1 * 1', 'Europe/Berlin').nextRuns(3)
  t.equal(getTasks().size, before)
})

// ---------------------------------------------------------------------------------------------
// Agreement with cron-parser

const EXPRESSIONS = [
  '* * * * *',
  '*/15 * * * *',
  '0 */6 * * *',
  '0 9-17 * * MON-FRI',
  '10-50/20 1-23/3 * * *',
  '5/20 * * * *',
  '5,35 8,20 * * *',
  '0 0 * JAN,JUL SUN',
  '0 0 * * 7',
  '*/20 * * * * *',
  '15 30 4 * * *',
  '0 0 L * *',
  '0 0 1 * 1',
  '0 12 1,15 * FRI',
  '30 2 * * *',
  '45 1 * * *',
  '0 3 * * *',
  '0 * * * *',
  '@daily',
]

interface Window {
  zone: string
  what: string
  starts: string[]
  /** Expressions on which we and cron-parser differ in this window; each case has its own test below. */
  differ?: string[]
  /** Expressions on which cron-parser throws "loop limit exceeded" here (slowly, so not re-checked). */
  cronParserThrows?: string[]
}

// Start dates are chosen per zone: a quiet date, plus a day and a few minutes before each 2026 DST change.
const WINDOWS: Window[] = [
  {
    zone: 'UTC',
    what: 'no DST',
    starts: ['2026-01-15T10:20:30.250Z', '2026-02-27T23:59:59Z', '2026-12-31T23:50:00Z'],
  },
  {
    zone: 'Asia/Kolkata',
    what: 'no DST, +05:30',
    starts: ['2026-01-15T10:20:30.250Z', '2026-02-27T18:25:00Z'],
  },
  { zone: 'America/New_York', what: 'quiet', starts: ['2026-01-15T10:20:30.250Z'] },
  {
    zone: 'America/New_York',
    what: 'spring forward 2026-03-08',
    starts: ['2026-03-07T12:00:00Z', '2026-03-08T06:50:00Z'],
    differ: ['30 2 * * *'], // see "spring-forward gap"
  },
  {
    zone: 'America/New_York',
    what: 'fall back 2026-11-01',
    starts: ['2026-10-31T12:00:00Z', '2026-11-01T04:50:00Z'],
    differ: ['*/15 * * * *', '5/20 * * * *', '0 * * * *'], // see "repeated hour"
  },
  { zone: 'Europe/Berlin', what: 'quiet', starts: ['2026-01-15T10:20:30.250Z'] },
  {
    zone: 'Europe/Berlin',
    what: 'spring forward 2026-03-29',
    starts: ['2026-03-28T12:00:00Z', '2026-03-29T00:50:00Z'],
    differ: ['30 2 * * *'], // see "spring-forward gap"
  },
  {
    zone: 'Europe/Berlin',
    what: 'fall back 2026-10-25',
    starts: ['2026-10-24T12:00:00Z', '2026-10-24T23:50:00Z'],
    differ: ['* * * * *', '*/15 * * * *', '5/20 * * * *', '0 * * * *', '30 2 * * *'], // see "repeated hour"
  },
  { zone: 'Australia/Lord_Howe', what: 'quiet', starts: ['2026-01-15T10:20:30.250Z'] },
  {
    zone: 'Australia/Lord_Howe',
    what: 'fall back 30 min 2026-04-05',
    starts: ['2026-04-04T12:00:00Z', '2026-04-04T14:20:00Z'],
    // see "Lord Howe"
    differ: ['* * * * *', '*/15 * * * *', '10-50/20 1-23/3 * * *', '5/20 * * * *', '45 1 * * *'],
    cronParserThrows: ['0 */6 * * *', '5,35 8,20 * * *', '0 3 * * *', '0 * * * *'],
  },
  {
    zone: 'Australia/Lord_Howe',
    what: 'spring forward 30 min 2026-10-04',
    starts: ['2026-10-03T12:00:00Z', '2026-10-03T15:10:00Z'],
    differ: ['*/15 * * * *', '5/20 * * * *', '30 2 * * *'], // see "Lord Howe"
  },
]

t.test('nextRuns agrees with cron-parser', async (t) => {
  const RUNS = 16
  for (const window of WINDOWS) {
    for (const expression of EXPRESSIONS) {
      const label = `${expression} in ${window.zone}, ${window.what}`
      if (window.cronParserThrows?.includes(expression)) continue
      const compare = (start: string) => ({
        start,
        ours: ourRuns(expression, window.zone, at(start), RUNS),
        theirs: cronParserRuns(expression, window.zone, at(start), RUNS),
      })
      if (window.differ?.includes(expression)) {
        // Keep the list honest: a listed difference that has disappeared should be removed.
        const differs = window.starts.some((start) => {
          const { ours, theirs } = compare(start)
          return ours.join() !== theirs.join()
        })
        t.ok(differs, `${label}: still differs from cron-parser, as documented`)
        continue
      }
      for (const { start, ours, theirs } of window.starts.map(compare))
        t.same(ours, theirs, `${label}, from ${start}`)
    }
  }
})

t.test('OR of day-of-month and day-of-week, by hand', async (t) => {
  // 2026-06-01 is a Monday.
  t.same(ourRuns('0 0 1 * 1', 'UTC', at('2026-05-31T12:00:00Z'), 12), [
    '2026-06-01T00:00:00.000Z', // the 1st, and a Monday: once
    '2026-06-08T00:00:00.000Z',
    '2026-06-15T00:00:00.000Z',
    '2026-06-22T00:00:00.000Z',
    '2026-06-29T00:00:00.000Z',
    '2026-07-01T00:00:00.000Z', // Wednesday the 1st
    '2026-07-06T00:00:00.000Z',
    '2026-07-13T00:00:00.000Z',
    '2026-07-20T00:00:00.000Z',
    '2026-07-27T00:00:00.000Z',
    '2026-08-01T00:00:00.000Z', // Saturday the 1st
    '2026-08-03T00:00:00.000Z',
  ])
  t.same(ourRuns('0 12 1,15 * FRI', 'Europe/Berlin', at('2026-05-01T12:00:00Z'), 8), [
    '2026-05-08T10:00:00.000Z', // Fri
    '2026-05-15T10:00:00.000Z', // the 15th, and a Friday
    '2026-05-22T10:00:00.000Z',
    '2026-05-29T10:00:00.000Z',
    '2026-06-01T10:00:00.000Z', // Mon the 1st
    '2026-06-05T10:00:00.000Z',
    '2026-06-12T10:00:00.000Z',
    '2026-06-15T10:00:00.000Z', // Mon the 15th
  ])
})

t.test('a day field starting with "*" is unrestricted (Vixie), unlike in cron-parser', async (t) => {
  // Vixie cron (and we) AND the day fields here, because day-of-month starts with "*": odd-numbered
  // Mondays. cron-parser only treats a bare "*" or "?" as unrestricted, so it ORs: every odd day
  // and every Monday.
  const from = at('2026-06-01T00:00:00Z')
  t.same(ourRuns('0 0 */2 * 1', 'UTC', from, 4), [
    '2026-06-15T00:00:00.000Z',
    '2026-06-29T00:00:00.000Z',
    '2026-07-13T00:00:00.000Z',
    '2026-07-27T00:00:00.000Z',
  ])
  t.same(cronParserRuns('0 0 */2 * 1', 'UTC', from, 4), [
    '2026-06-03T00:00:00.000Z',
    '2026-06-05T00:00:00.000Z',
    '2026-06-07T00:00:00.000Z',
    '2026-06-08T00:00:00.000Z',
  ])
})

// ---------------------------------------------------------------------------------------------
// DST corners. Our times are node-cron's (they are the times its scheduler fires), which differ
// from cron-parser's in the cases below. Each test pins our behaviour and records cron-parser's.

t.test('spring-forward gap: a local time that does not exist that day is skipped', async (t) => {
  // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens.
  // node-cron skips the day. cron-parser runs it at 03:30 EDT; Vixie cron would run it right
  // after the jump (03:00). We keep node-cron's behaviour because it is what actually fires.
  const from = at('2026-03-07T12:00:00Z')
  t.same(ourRuns('30 2 * * *', 'America/New_York', from, 2), [
    '2026-03-09T06:30:00.000Z', // 02:30 EDT on the 9th; nothing on the 8th
    '2026-03-10T06:30:00.000Z',
  ])
  t.same(cronParserRuns('30 2 * * *', 'America/New_York', from, 1), ['2026-03-08T07:30:00.000Z'])

  // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
  t.same(ourRuns('0 2 * * *', 'Europe/Berlin', at('2026-03-28T12:00:00Z'), 2), [
    '2026-03-30T00:00:00.000Z',
    '2026-03-31T00:00:00.000Z',
  ])

  // Schedules with a wildcard hour carry on in real time across the jump.
  t.same(ourRuns('*/20 * * * *', 'America/New_York', at('2026-03-08T06:30:00Z'), 4), [
    '2026-03-08T06:40:00.000Z', // 01:40 EST
    '2026-03-08T07:00:00.000Z', // 03:00 EDT
    '2026-03-08T07:20:00.000Z',
    '2026-03-08T07:40:00.000Z',
  ])
})

t.test('repeated hour: each local wall-clock time fires once', async (t) => {
  // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:00-01:59 happens twice.
  // node-cron fires the first pass and skips the second, even for a wildcard-hour schedule, so an
  // every-15-minutes job pauses for an hour of real time. cron-parser (like Vixie cron for
  // wildcard jobs) fires both passes.
  const ny = at('2026-11-01T05:20:00Z') // 01:20 EDT
  t.same(ourRuns('*/15 * * * *', 'America/New_York', ny, 4), [
    '2026-11-01T05:30:00.000Z', // 01:30 EDT
    '2026-11-01T05:45:00.000Z', // 01:45 EDT
    '2026-11-01T07:00:00.000Z', // 02:00 EST: 01:00-01:45 EST (06:00-06:45Z) are skipped
    '2026-11-01T07:15:00.000Z',
  ])
  t.same(cronParserRuns('*/15 * * * *', 'America/New_York', ny, 4), [
    '2026-11-01T05:30:00.000Z',
    '2026-11-01T05:45:00.000Z',
    '2026-11-01T06:00:00.000Z',
    '2026-11-01T06:15:00.000Z',
  ])

  // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET. Here node-cron fires the SECOND pass:
  // it converts a local time to UTC using the offset in force at that wall-clock reading taken as
  // UTC, which for zones east of UTC lies after the change. The first pass (00:00-00:45Z) is skipped.
  const berlin = at('2026-10-24T23:40:00Z') // 01:40 CEST
  t.same(ourRuns('*/15 * * * *', 'Europe/Berlin', berlin, 4), [
    '2026-10-24T23:45:00.000Z', // 01:45 CEST
    '2026-10-25T01:00:00.000Z', // 02:00 CET
    '2026-10-25T01:15:00.000Z',
    '2026-10-25T01:30:00.000Z',
  ])

  // A fixed time in the repeated hour fires once in both libraries, but not always the same pass:
  // New York 01:30 -> first pass (EDT) in both; Berlin 02:30 -> node-cron the second (CET),
  // cron-parser the first (CEST). Vixie cron runs it on the first pass.
  t.same(ourRuns('30 1 * * *', 'America/New_York', at('2026-10-31T12:00:00Z'), 2), [
    '2026-11-01T05:30:00.000Z',
    '2026-11-02T06:30:00.000Z',
  ])
  t.same(ourRuns('30 2 * * *', 'Europe/Berlin', at('2026-10-24T12:00:00Z'), 2), [
    '2026-10-25T01:30:00.000Z',
    '2026-10-26T01:30:00.000Z',
  ])
  t.same(cronParserRuns('30 2 * * *', 'Europe/Berlin', at('2026-10-24T12:00:00Z'), 1), [
    '2026-10-25T00:30:00.000Z',
  ])
})

t.test('Lord Howe: half-hour DST shifts', async (t) => {
  // 2026-10-04: 02:00 (+10:30) jumps to 02:30 (+11). Local 02:30-02:59 exist; node-cron fires them.
  // cron-parser skips them (it jumps to 03:00), and puts '30 2' at 03:30: both wrong.
  const spring = at('2026-10-03T15:10:00Z') // 01:40 +10:30
  t.same(ourRuns('*/15 * * * *', 'Australia/Lord_Howe', spring, 4), [
    '2026-10-03T15:15:00.000Z', // 01:45 +10:30
    '2026-10-03T15:30:00.000Z', // 02:30 +11
    '2026-10-03T15:45:00.000Z', // 02:45 +11
    '2026-10-03T16:00:00.000Z', // 03:00 +11
  ])
  t.same(ourRuns('30 2 * * *', 'Australia/Lord_Howe', spring, 1), ['2026-10-03T15:30:00.000Z'])
  t.same(cronParserRuns('*/15 * * * *', 'Australia/Lord_Howe', spring, 2), [
    '2026-10-03T15:15:00.000Z',
    '2026-10-03T16:00:00.000Z',
  ])

  // 2026-04-05: 02:00 (+11) falls back to 01:30 (+10:30); 01:30-01:59 happen twice. As in Berlin,
  // node-cron fires the second pass only. cron-parser fires the first, and throws "loop limit
  // exceeded" for some expressions (e.g. '0 3 * * *') whose search crosses this change.
  const autumn = at('2026-04-04T14:20:00Z') // 01:20 +11
  t.same(ourRuns('*/15 * * * *', 'Australia/Lord_Howe', autumn, 4), [
    '2026-04-04T15:00:00.000Z', // 01:30 +10:30 (01:30 and 01:45 +11 are skipped)
    '2026-04-04T15:15:00.000Z', // 01:45 +10:30
    '2026-04-04T15:30:00.000Z', // 02:00 +10:30
    '2026-04-04T15:45:00.000Z',
  ])
  t.same(ourRuns('0 3 * * *', 'Australia/Lord_Howe', autumn, 2), [
    '2026-04-04T16:30:00.000Z',
    '2026-04-05T16:30:00.000Z',
  ])
  t.throws(() => cronParserRuns('0 3 * * *', 'Australia/Lord_Howe', autumn, 1), /loop limit exceeded/)
})

// ---------------------------------------------------------------------------------------------
// next / nextRuns / between

t.test('next is strictly after, at whole seconds', async (t) => {
  const everyMinute = parseCron('* * * * *', 'UTC')
  t.equal(everyMinute.next(at('2026-06-01T10:00:00Z')).toISOString(), '2026-06-01T10:01:00.000Z')
  t.equal(everyMinute.next(at('2026-06-01T10:00:59.999Z')).toISOString(), '2026-06-01T10:01:00.000Z')
  const everySecond = parseCron('* * * * * *', 'UTC')
  t.equal(everySecond.next(at('2026-06-01T10:00:00.500Z')).toISOString(), '2026-06-01T10:00:01.000Z')
  t.same(everyMinute.nextRuns(0, at('2026-06-01T10:00:00Z')), [])
  const [soon] = everyMinute.nextRuns(1)
  t.ok(soon && soon > new Date(), 'after defaults to now')
  t.throws(() => everyMinute.next(new Date(Number.NaN)), TypeError)
  t.throws(() => everyMinute.nextRuns(-1), RangeError)
  t.throws(() => everyMinute.nextRuns(1.5), RangeError)
})

/** The reference: walk every fire from `from`, keep the last `limit`. */
function bruteBetween(schedule: CronSchedule, from: Date, to: Date, limit: number): string[] {
  const fires: Date[] = []
  for (let d = schedule.next(from); d <= to; d = schedule.next(d)) fires.push(d)
  return iso(fires.slice(Math.max(0, fires.length - limit)))
}

t.test('between returns the latest `limit` fires in (from, to], ascending', async (t) => {
  const everyMinute = parseCron('* * * * *', 'UTC')
  const from = at('2026-06-01T10:00:00Z')
  const to = at('2026-06-01T10:10:00Z')
  t.same(iso(everyMinute.between(from, to, 3)), [
    '2026-06-01T10:08:00.000Z',
    '2026-06-01T10:09:00.000Z',
    '2026-06-01T10:10:00.000Z', // `to` is included
  ])
  t.equal(everyMinute.between(from, to, 100).length, 10, 'all of them when fewer than limit; `from` excluded')
  t.equal(everyMinute.between(from, to, 100)[0]?.toISOString(), '2026-06-01T10:01:00.000Z')
  t.same(everyMinute.between(from, to, 0), [])
  t.same(everyMinute.between(to, from, 5), [], 'empty when to is before from')
  t.same(everyMinute.between(from, at('2026-06-01T10:00:59Z'), 5), [])

  const cases: Array<[expression: string, tz: string, from: string, to: string, limit: number]> = [
    ['0 0 1 * 1', 'UTC', '2026-01-01T00:00:00Z', '2026-12-31T00:00:00Z', 7],
    ['*/7 * * * * *', 'Asia/Kolkata', '2026-06-01T00:00:00Z', '2026-06-01T00:30:00Z', 25],
    ['*/15 * * * *', 'America/New_York', '2026-10-31T22:00:00Z', '2026-11-01T09:00:00Z', 9],
    ['*/15 * * * *', 'Europe/Berlin', '2026-10-24T20:00:00Z', '2026-10-25T04:00:00Z', 20],
    ['0 12 1,15 * FRI', 'Australia/Lord_Howe', '2026-01-01T00:00:00Z', '2026-12-31T00:00:00Z', 13],
    ['0 0 L * *', 'UTC', '2020-01-01T00:00:00Z', '2026-12-31T00:00:00Z', 40],
  ]
  for (const [expression, tz, fromText, toText, limit] of cases) {
    const schedule = parseCron(expression, tz)
    const expected = bruteBetween(schedule, at(fromText), at(toText), limit)
    t.equal(expected.length, limit, `${expression} has at least ${limit} fires in range`)
    t.same(iso(schedule.between(at(fromText), at(toText), limit)), expected, `${expression} in ${tz}`)
  }
})

t.test('between stays cheap over a long range of a per-second schedule', async (t) => {
  const everySecond = parseCron('* * * * * *', 'UTC')
  const started = performance.now()
  const fires = everySecond.between(at('2026-01-01T00:00:00Z'), at('2026-07-01T00:00:00.500Z'), 5)
  t.same(iso(fires), [
    '2026-06-30T23:59:56.000Z',
    '2026-06-30T23:59:57.000Z',
    '2026-06-30T23:59:58.000Z',
    '2026-06-30T23:59:59.000Z',
    '2026-07-01T00:00:00.000Z',
  ])
  t.ok(performance.now() - started < 1000, 'well under a second for ~15.6 million fires in range')
  const daily = parseCron('@daily', 'UTC')
  const allOfThem = daily.between(
    at('2026-01-01T00:00:00Z'),
    at('2027-01-01T00:00:00Z'),
    Number.MAX_SAFE_INTEGER,
  )
  t.equal(allOfThem.length, 365, 'a huge limit means "all of them"')
  t.throws(() => daily.between(at('2026-01-01T00:00:00Z'), at('2027-01-01T00:00:00Z'), -1), RangeError)
})
