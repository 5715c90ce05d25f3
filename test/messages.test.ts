// Errors that say what to fix: schema errors name the field and what it may be, bodies must be
// JSON, ranges must not be inverted, and start-up errors name the variable and its allowed values.
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { buildTestApp } from './helper.js'

t.test('schema errors name the field and list what is allowed', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const unknown = await app.inject({
    method: 'PATCH',
    url: '/schedules/cache-clear',
    payload: { crn: '* * * * *' },
  })
  t.equal(unknown.statusCode, 400)
  t.equal(
    unknown.json().message,
    "body has unknown property 'crn'; allowed: cron, timezone, args, enabled, overlap, catchUp, then",
  )

  const state = await app.inject('/runs?state=done')
  t.equal(state.statusCode, 400)
  t.equal(
    state.json().message,
    'querystring.state must be one of: queued, running, succeeded, failed, cancelled, skipped',
  )

  const limit = await app.inject('/runs?limit=abc')
  t.equal(limit.statusCode, 400)
  t.equal(limit.json().message, 'querystring.limit must be an integer')

  const missing = await app.inject({ method: 'POST', url: '/schedules', payload: { job: 'cache-clear' } })
  t.equal(missing.statusCode, 400)
  t.match(missing.json().message, /^body is missing the required property '\w+'$/)

  const since = await app.inject('/runs?since=yesterday')
  t.equal(since.statusCode, 400)
  t.equal(since.json().message, 'querystring.since must be an ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z')
})

t.test('a body that is not JSON gets 415 saying how to send it', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const form = await app.inject({
    method: 'PATCH',
    url: '/schedules/cache-clear',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: '{"enabled":false}',
  })
  t.equal(form.statusCode, 415)
  t.equal(
    form.json().message,
    'send the body as JSON with the header "Content-Type: application/json" (this request said "application/x-www-form-urlencoded")',
  )
  const text = await app.inject({
    method: 'POST',
    url: '/jobs/cache-clear/runs',
    headers: { 'content-type': 'text/plain' },
    payload: '{}',
  })
  t.equal(text.statusCode, 415)
  t.match(text.json().message, /Content-Type: application\/json/)
})

t.test('since later than until is a 400, on every route that takes them', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  for (const url of ['/runs', '/audit']) {
    const res = await app.inject(`${url}?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z`)
    t.equal(res.statusCode, 400, url)
    t.equal(
      res.json().message,
      'querystring.since (2026-02-01T00:00:00Z) is later than querystring.until (2026-01-01T00:00:00Z)',
    )
    const fine = await app.inject(`${url}?since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z`)
    t.equal(fine.statusCode, 200, `${url}: an ordered range is fine`)
  }
})

t.test('a NUL character anywhere is a 400 naming where, not a database error', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const says = (where: string) =>
    `${where} contains a NUL character (\\u0000), which PostgreSQL cannot store: remove it`
  for (const [url, where] of [
    ['/runs?job=%00', 'querystring.job'],
    ['/runs?schedule=a%00b', 'querystring.schedule'],
    ['/audit?target=%00', 'querystring.target'],
    ['/backups?database=%00', 'querystring.database'],
    ['/jobs/%00', 'params.name'],
  ] as const) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 400, url)
    t.equal(res.json().message, says(where), url)
  }
  const body = await app.inject({
    method: 'POST',
    url: '/jobs/cache-clear/runs',
    payload: { args: { tables: ['ok', 'bad\u0000'] } },
  })
  t.equal(body.statusCode, 400)
  t.equal(body.json().message, says('body.args.tables[1]'))
  const key = await app.inject({
    method: 'POST',
    url: '/schedules',
    headers: { 'content-type': 'application/json' },
    payload: '{"name":"x","job":"cache-clear","cron":"* * * * *","args":{"a\\u0000":1}}',
  })
  t.equal(key.statusCode, 400)
  t.equal(key.json().message, says('body.args (a property name)'))
  const deep = await app.inject({
    method: 'POST',
    url: '/jobs/cache-clear/runs',
    headers: { 'content-type': 'application/json' },
    payload: `{"args":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
  })
  t.equal(deep.statusCode, 400, 'a deeply nested body is walked without overflowing the stack')
  t.equal((await app.inject('/runs?job=cache-clear')).statusCode, 200, 'other values are untouched')
})

t.test('start-up errors name the variable, the rule and the value', async (t) => {
  const message = (env: Record<string, string>) => {
    try {
      loadConfig(env)
      return ''
    } catch (err) {
      return (err as Error).message
    }
  }
  t.equal(
    message({ BACKUP_FORMAT: 'tar' }),
    'bad configuration:\n  BACKUP_FORMAT must be one of: plain, custom (got "tar")',
  )
  t.equal(
    message({ LOG_LEVEL: 'verbose' }),
    'bad configuration:\n  LOG_LEVEL must be one of: fatal, error, warn, info, debug, trace, silent (got "verbose")',
    'one line, not one per schema branch',
  )
  t.equal(
    message({ SCHEDULER_ENABLED: 'maybe' }),
    'bad configuration:\n  SCHEDULER_ENABLED must be true or false (got "maybe")',
  )
  t.equal(message({ RUN_POLL_MS: '1' }), 'bad configuration:\n  RUN_POLL_MS must be >= 50 (got 1)')
  t.match(
    message({ DATABASE_URL: 'mysql://x' }),
    /DATABASE_URL .* \(got \(hidden\)\)/,
    'secrets are not echoed',
  )
})

t.test('no job args schema requires a property that has a default', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const jobs = (await app.inject('/jobs')).json().items as {
    name: string
    argsSchema: { required?: string[]; properties?: Record<string, { default?: unknown }> }
  }[]
  for (const job of jobs) {
    for (const [property, schema] of Object.entries(job.argsSchema.properties ?? {})) {
      if (schema.default === undefined) continue
      t.notOk(job.argsSchema.required?.includes(property), `${job.name}: ${property} has a default`)
    }
  }
  t.ok(jobs.some((j) => j.name === 'prune-runs'))
})
