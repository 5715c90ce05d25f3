import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { ACCESS, accessOf } from '../src/http/auth/access.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually, TEST_ADMIN_TOKEN } from './helper.js'
import { runCommand } from './support/process.js'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

async function createToken(app: FastifyInstance, name: string, role: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/tokens', payload: { name, role } })
  if (res.statusCode !== 201) throw new Error(`token create failed: ${res.body}`)
  return res.json().token
}

t.test('no token, a wrong token and public routes', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const none = await app.inject({ url: '/runs', headers: { authorization: '' } })
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="steward"')
  t.match(none.json().message, /Authorization: Bearer/)

  const wrong = await app.inject({ url: '/runs', headers: bearer('stw_not-a-real-token') })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.headers['www-authenticate'], /error="invalid_token"/)
  t.notMatch(wrong.body, /not-a-real-token/, 'the token is never echoed')

  const basic = await app.inject({ url: '/runs', headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } })
  t.equal(basic.statusCode, 401, 'only bearer tokens are accepted')

  for (const url of ['/health', '/ready', '/openapi.json', '/docs/']) {
    const res = await app.inject({ url, headers: { authorization: '' } })
    t.equal(res.statusCode, 200, `${url} is open`)
  }
  const unknown = await app.inject({ url: '/no-such-route', headers: { authorization: '' } })
  t.equal(unknown.statusCode, 404)
})

t.test('roles: viewer < operator < admin, with a message that names the role', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  const viewer = bearer(await createToken(app, 'grafana', 'viewer'))
  const operator = bearer(await createToken(app, 'ci', 'operator'))

  t.same((await app.inject({ url: '/me', headers: viewer })).json(), { name: 'grafana', role: 'viewer' })
  t.same((await app.inject({ url: '/me' })).json(), { name: 'STEWARD_ADMIN_TOKEN', role: 'admin' })
  t.equal((await app.inject({ url: '/runs', headers: viewer })).statusCode, 200)
  t.equal((await app.inject({ url: '/schedules', headers: viewer })).statusCode, 200)
  const preview = await app.inject({
    method: 'POST',
    url: '/schedules/preview',
    headers: viewer,
    payload: { cron: '*/5 * * * *' },
  })
  t.equal(preview.statusCode, 200, 'a preview saves nothing: viewers may use it')

  const trigger = { method: 'POST' as const, url: '/jobs/sleeper/runs', payload: { args: { ms: 1 } } }
  const refused = await app.inject({ ...trigger, headers: viewer })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().message, 'this needs the operator role; the token "grafana" has the viewer role')
  t.equal((await app.inject({ ...trigger, headers: operator })).statusCode, 202)

  const edit = { method: 'PATCH' as const, url: '/schedules/cache-clear', payload: { enabled: false } }
  t.equal((await app.inject({ ...edit, headers: operator })).statusCode, 403)
  t.equal((await app.inject({ ...edit, headers: viewer })).statusCode, 403)
  t.equal((await app.inject(edit)).statusCode, 200)
  t.equal((await app.inject({ url: '/tokens', headers: operator })).statusCode, 403)
  t.equal((await app.inject({ url: '/audit', headers: operator })).statusCode, 403)
})

t.test('every route has a rule, and every rule a route', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const spec = (await app.inject('/openapi.json')).json()
  const inSpec = new Set<string>()
  for (const [url, methods] of Object.entries<Record<string, unknown>>(spec.paths)) {
    for (const method of Object.keys(methods)) {
      if (method === 'head') continue
      inSpec.add(`${method.toUpperCase()} ${url.replace(/\{(\w+)\}/g, ':$1')}`)
    }
  }
  for (const rule of Object.keys(ACCESS)) {
    if (rule === 'GET /' || rule === 'GET /openapi.json') continue // hidden from the spec
    t.ok(inSpec.has(rule), `${rule} is a route`)
  }
  t.ok(spec.components.securitySchemes.bearerAuth, 'the bearer scheme is declared')
  t.same(spec.paths['/health'].get.security, [], '/health needs no token')
  t.same(spec.paths['/runs'].get.security, [{ bearerAuth: [] }])
  t.ok(spec.paths['/runs'].get.responses['401'], '401 is documented')
  t.match(spec.paths['/schedules/{name}'].patch.description, /\*\*admin\*\* role/)
})

t.test('tokens: shown once, stored as a hash, revoked at once', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const created = await app.inject({
    method: 'POST',
    url: '/tokens',
    payload: { name: 'ci', role: 'operator' },
  })
  t.equal(created.statusCode, 201)
  const { token } = created.json()
  t.match(token, /^stw_[A-Za-z0-9_-]{43}$/, '32 random bytes, URL-safe')

  const listed = (await app.inject('/tokens')).json().items
  t.same(
    listed.map((i: { name: string; role: string }) => [i.name, i.role]),
    [['ci', 'operator']],
  )
  t.notMatch(JSON.stringify(listed), token.slice(4), 'the list never shows a token')
  const [row] = await app.sql<{ tokenHash: Buffer }[]>`select token_hash from api_tokens where name = 'ci'`
  t.equal(row?.tokenHash.toString('hex'), createHash('sha256').update(token).digest('hex'))
  const stored = await app.sql`select * from api_tokens`
  t.notMatch(JSON.stringify(stored), token.slice(4), 'the token itself is stored nowhere')

  const dup = await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'ci', role: 'viewer' } })
  t.equal(dup.statusCode, 409)
  const badName = await app.inject({
    method: 'POST',
    url: '/tokens',
    payload: { name: '../x', role: 'viewer' },
  })
  t.equal(badName.statusCode, 400)
  const badRole = await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'x', role: 'root' } })
  t.equal(badRole.statusCode, 400)
  t.match(badRole.json().message, /role/)

  t.equal((await app.inject({ url: '/runs', headers: bearer(token) })).statusCode, 200)
  await eventually(async () => {
    const [used] = await app.sql<{ lastUsedAt: Date | null }[]>`
      select last_used_at from api_tokens where name = 'ci'`
    return used?.lastUsedAt ? true : undefined
  })
  t.equal((await app.inject({ method: 'DELETE', url: '/tokens/ci' })).statusCode, 204)
  const revoked = await app.inject({ url: '/runs', headers: bearer(token) })
  t.equal(revoked.statusCode, 401, 'a revoked token is refused at once')
  t.equal((await app.inject({ method: 'DELETE', url: '/tokens/ci' })).statusCode, 404)
  const env = await app.inject({ method: 'DELETE', url: '/tokens/STEWARD_ADMIN_TOKEN' })
  t.equal(env.statusCode, 409)
  t.match(env.json().message, /environment/)
  const again = await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'ci', role: 'viewer' } })
  t.equal(again.statusCode, 201, 'a revoked name can be reused')
})

t.test('a revoke on one instance reaches the others', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false' }
  const a = await buildTestApp(t, { databaseUrl, env })
  const b = await buildTestApp(t, { databaseUrl, env })
  const token = await createToken(a, 'dashboard', 'viewer')
  t.equal((await b.inject({ url: '/runs', headers: bearer(token) })).statusCode, 200, 'b has it cached now')
  await a.inject({ method: 'DELETE', url: '/tokens/dashboard' })
  await eventually(
    async () =>
      (await b.inject({ url: '/runs', headers: bearer(token) })).statusCode === 401 ? true : undefined,
    2000,
    'b to refuse the revoked token',
  )
})

t.test('first start with no token configured writes an admin token to DATA_DIR/admin-token', async (t) => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-token-'))
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
  const databaseUrl = await createTestDatabase(t)
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const env = { SCHEDULER_ENABLED: 'false', DATA_DIR: dataDir, STEWARD_ADMIN_TOKEN: '' }
  const app = await buildTestApp(t, { databaseUrl, env, logger: { level: 'info', stream } })
  const file = path.join(dataDir, 'admin-token')
  const token = (await fs.readFile(file, 'utf8')).trim()
  t.equal((await fs.stat(file)).mode & 0o777, 0o600)
  t.match(lines.join(''), file, 'the log says where the token is')
  t.notMatch(lines.join(''), token, 'but never the token')
  t.same((await app.inject({ url: '/me', headers: bearer(token) })).json(), { name: 'admin', role: 'admin' })

  const last = await app.inject({ method: 'DELETE', url: '/tokens/admin', headers: bearer(token) })
  t.equal(last.statusCode, 409, 'the last admin token cannot be revoked')
  t.match(last.json().message, /last admin token/)

  const otherDir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-token-'))
  t.teardown(() => fs.rm(otherDir, { recursive: true, force: true }))
  await buildTestApp(t, { databaseUrl, env: { ...env, DATA_DIR: otherDir } })
  await t.rejects(fs.stat(path.join(otherDir, 'admin-token')), 'a token exists: no second one is made')
})

t.test('failed authentications are limited per address; valid tokens are still served', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', AUTH_FAILURES_PER_MINUTE: '3' } })
  for (let i = 0; i < 3; i++) {
    t.equal((await app.inject({ url: '/runs', headers: bearer(`stw_guess-${i}`) })).statusCode, 401)
  }
  const blocked = await app.inject({ url: '/runs', headers: bearer('stw_guess-3') })
  t.equal(blocked.statusCode, 429, 'a fourth wrong token from the address is refused for the minute')
  t.ok(Number(blocked.headers['retry-after']) > 0)
  t.match(blocked.json().message, /too many failed authentications; retry in \d+ s/)
  const good = await app.inject({ url: '/runs', headers: bearer(TEST_ADMIN_TOKEN) })
  t.equal(
    good.statusCode,
    200,
    "a valid token from the same address is served: others' failures lock nobody out",
  )
  t.equal((await app.inject({ url: '/health', headers: { authorization: '' } })).statusCode, 200)
})

t.test('TRUST_PROXY: behind a trusted proxy, failures count per client address', async (t) => {
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', AUTH_FAILURES_PER_MINUTE: '2', TRUST_PROXY: '127.0.0.1' },
  })
  const from = (ip: string, token: string) => ({ ...bearer(token), 'x-forwarded-for': ip })
  for (let i = 0; i < 3; i++) await app.inject({ url: '/runs', headers: from('203.0.113.7', `stw_bad-${i}`) })
  t.equal((await app.inject({ url: '/runs', headers: from('203.0.113.7', 'stw_bad') })).statusCode, 429)
  const other = await app.inject({ url: '/runs', headers: from('198.51.100.2', 'stw_typo') })
  t.equal(
    other.statusCode,
    401,
    "another client behind the same proxy is not limited by the first one's failures",
  )

  const untrusted = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', AUTH_FAILURES_PER_MINUTE: '2' },
  })
  for (let i = 0; i < 3; i++) {
    await untrusted.inject({ url: '/runs', headers: from(`203.0.113.${i}`, `stw_bad-${i}`) })
  }
  const spoofed = await untrusted.inject({ url: '/runs', headers: from('198.51.100.9', 'stw_bad') })
  t.equal(spoofed.statusCode, 429, 'without TRUST_PROXY a forged X-Forwarded-For changes nothing')
})

t.test('TRUST_PROXY is validated at start-up', async (t) => {
  const ok = (value: string) => loadConfig({ TRUST_PROXY: value }).trustProxy
  t.equal(ok('true'), true)
  t.equal(ok('false'), false)
  t.equal(ok('2'), 2)
  t.same(ok('10.0.0.0/8, 127.0.0.1,::1'), ['10.0.0.0/8', '127.0.0.1', '::1'])
  t.equal(loadConfig({}).trustProxy, false)
  t.throws(
    () => loadConfig({ TRUST_PROXY: '10.0.0.0/33' }),
    /TRUST_PROXY="10.0.0.0\/33" is invalid: "10.0.0.0\/33" is not an IP address or CIDR/,
  )
  t.throws(() => loadConfig({ TRUST_PROXY: 'proxy.local' }), /use true, a hop count, or addresses and CIDRs/)
})

t.test('Swagger UI and the dashboard files are public by exact path, not by prefix', async (t) => {
  t.equal(accessOf('GET', '/docs'), 'public')
  t.equal(accessOf('GET', '/docs/json'), 'public')
  t.equal(accessOf('GET', '/ui/app.js'), 'public')
  t.equal(accessOf('GET', '/docsecret'), undefined, 'a route that only starts like /docs has no rule')
  t.equal(accessOf('GET', '/uix'), undefined)
  t.equal(accessOf('POST', '/jobs/:name/runs'), 'operator')
})

t.test("runs that delete history are an admin's call, and refusals are audited", async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false', RUNS_RETENTION_DAYS: '30' } })
  const operator = bearer(await createToken(app, 'ci', 'operator'))
  const trigger = (job: string, args: object, headers?: Record<string, string>) =>
    app.inject({
      method: 'POST',
      url: `/jobs/${job}/runs`,
      payload: { args },
      ...(headers ? { headers } : {}),
    })

  for (const type of ['daily', 'hourly']) {
    const refused = await trigger('database-backup', { type }, operator)
    t.equal(refused.statusCode, 403, `an operator may not start a ${type} set`)
    t.match(refused.json().message, /needs the admin role: an hourly or daily set rotates the oldest set/)
    t.match(refused.json().message, /an operator may run \{"type": "manual"\}/)
  }
  const prune = await trigger('prune-runs', { olderThanDays: 7 }, operator)
  t.equal(prune.statusCode, 403, 'an operator may not prune below RUNS_RETENTION_DAYS')
  t.match(prune.json().message, /deletes runs newer than RUNS_RETENTION_DAYS/)
  const [runs] = await app.sql<{ count: number }[]>`select count(*)::int as count from job_runs`
  t.equal(runs?.count, 0, 'a refused trigger creates no run')

  t.equal((await trigger('prune-runs', {}, operator)).statusCode, 202, 'the default retention is fine')
  t.equal((await trigger('prune-runs', { olderThanDays: 45 }, operator)).statusCode, 202)
  t.equal((await trigger('prune-runs', { olderThanDays: 7 })).statusCode, 202, 'an admin may')
  const wipe = await trigger('template-sync', { allowMassDelete: true }, operator)
  t.equal(wipe.statusCode, 403, 'an operator may not let a sync empty the templates table')
  t.match(wipe.json().message, /allowMassDelete lets a sync delete every template/)
  const bad = await trigger('database-backup', { type: 'weekly' }, operator)
  t.equal(bad.statusCode, 400, 'bad args are a 400 before any role question')

  const denied = (await app.inject('/audit?action=access.denied')).json().items
  t.equal(denied.length, 4)
  t.match(denied[0], {
    actor: 'ci',
    action: 'access.denied',
    target: 'POST /jobs/template-sync/runs',
    after: { message: /admin role/ },
  })
  const viewer = bearer(await createToken(app, 'grafana', 'viewer'))
  await app.inject({ method: 'DELETE', url: '/schedules/cache-clear', headers: viewer })
  await app.inject({ url: '/tokens', headers: viewer })
  const after = (await app.inject('/audit?action=access.denied')).json().items
  t.equal(after.length, 5, 'a refused change is audited; a refused read is not')
  t.match(after[0], { actor: 'grafana', target: 'DELETE /schedules/cache-clear' })
})

t.test('changes are limited per token and endpoint', async (t) => {
  const app = await buildTestApp(t, {
    jobs: testJobs,
    env: { SCHEDULER_ENABLED: 'false', RATE_LIMIT_MUTATIONS: '2' },
  })
  const trigger = { method: 'POST' as const, url: '/jobs/sleeper/runs', payload: { args: { ms: 1 } } }
  t.equal((await app.inject(trigger)).statusCode, 202)
  t.equal((await app.inject(trigger)).statusCode, 202)
  const limited = await app.inject(trigger)
  t.equal(limited.statusCode, 429)
  t.match(limited.json().message, /more than 2 requests a minute to this endpoint/)
  const other = bearer(await createToken(app, 'other', 'operator'))
  t.equal((await app.inject({ ...trigger, headers: other })).statusCode, 202, 'each token has its own budget')
  t.equal((await app.inject('/runs')).statusCode, 200, 'reading is not limited')
})

t.test('the audit log records who changed what, before and after', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
  const ops = bearer(await createToken(app, 'ops', 'operator'))
  await app.inject({ method: 'PATCH', url: '/schedules/cache-clear', payload: { cron: '15 4 * * *' } })
  const run = (
    await app.inject({
      method: 'POST',
      url: '/jobs/sleeper/runs',
      headers: ops,
      payload: { args: { ms: 5000 } },
    })
  ).json()
  await app.inject({ method: 'POST', url: `/runs/${run.id}/cancel`, headers: ops })
  await app.inject({
    method: 'POST',
    url: '/schedules',
    payload: { name: 'nightly', job: 'cache-clear', cron: '0 3 * * *' },
  })
  await app.inject({ method: 'DELETE', url: '/schedules/nightly' })
  await app.inject({ method: 'DELETE', url: '/tokens/ops' })
  const refused = await app.inject({
    method: 'PATCH',
    url: '/schedules/cache-clear',
    payload: { cron: 'nope' },
  })
  t.equal(refused.statusCode, 400)

  const page = (await app.inject('/audit')).json()
  t.same(
    page.items.map((e: { action: string; actor: string; target: string }) => [e.action, e.actor, e.target]),
    [
      ['token.revoke', 'STEWARD_ADMIN_TOKEN', 'ops'],
      ['schedule.delete', 'STEWARD_ADMIN_TOKEN', 'nightly'],
      ['schedule.create', 'STEWARD_ADMIN_TOKEN', 'nightly'],
      ['run.cancel', 'ops', String(run.id)],
      ['job.trigger', 'ops', 'sleeper'],
      ['schedule.update', 'STEWARD_ADMIN_TOKEN', 'cache-clear'],
      ['token.create', 'STEWARD_ADMIN_TOKEN', 'ops'],
    ],
    'newest first; a refused change is not recorded',
  )
  const update = page.items.find((e: { action: string }) => e.action === 'schedule.update')
  t.equal(update.before.cron, '0 3 * * *')
  t.equal(update.after.cron, '15 4 * * *')
  t.same(update.before.enabled, true)

  const filtered = (await app.inject('/audit?actor=ops')).json().items
  t.same(
    filtered.map((e: { action: string }) => e.action),
    ['run.cancel', 'job.trigger'],
  )
  const first = (await app.inject('/audit?limit=3')).json()
  t.equal(first.items.length, 3)
  const second = (await app.inject(`/audit?limit=3&cursor=${first.nextCursor}`)).json()
  t.equal(second.items[0].id, first.items[2].id - 1, 'keyset pagination continues where it stopped')
  t.equal((await app.inject('/audit?action=drop-table')).statusCode, 400)
})

t.test('credentials never reach the log', async (t) => {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false' },
    logger: { level: 'trace', stream },
  })
  const created = (
    await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'secret', role: 'viewer' } })
  ).json()
  await app.inject({ url: '/runs', headers: bearer(created.token) })
  await app.inject({ url: '/runs', headers: bearer('stw_wrong-token-value') })
  // Whatever a log call is handed, the redaction paths keep credentials out.
  app.log.info(
    {
      req: { headers: { authorization: `Bearer ${created.token}` } },
      token: created.token,
      config: { databaseUrl: app.config.databaseUrl, adminToken: app.config.adminToken },
    },
    'a careless log line',
  )
  const password = decodeURIComponent(new URL(app.config.databaseUrl ?? '').password)
  const log = lines.join('')
  t.match(log, /a careless log line/)
  for (const secret of [created.token, TEST_ADMIN_TOKEN, 'stw_wrong-token-value', password].filter(Boolean)) {
    t.notOk(log.includes(secret), 'a credential is not in the log')
  }
})

t.test('security headers', async (t) => {
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const res = await app.inject('/health')
  t.match(res.headers['content-security-policy'], /default-src 'self'/)
  t.match(res.headers['content-security-policy'], /frame-ancestors 'none'/)
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  const big = await app.inject({
    method: 'POST',
    url: '/schedules',
    payload: { name: 'x', job: 'cache-clear', cron: '* * * * *', args: { pad: 'x'.repeat(2 * 1024 * 1024) } },
  })
  t.equal(big.statusCode, 413, 'bodies over 1 MiB are refused')
})

t.test('steward token: create, list, revoke from the command line', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const app = await buildTestApp(t, { databaseUrl, env: { SCHEDULER_ENABLED: 'false' } })
  const cli = (...args: string[]) =>
    runCommand(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'token', ...args], {
      DATABASE_URL: databaseUrl,
      STEWARD_ADMIN_TOKEN: '',
    })

  const created = await cli('create', '--name', 'ci', '--role', 'operator')
  t.equal(created.code, 0, created.stderr)
  const token = created.stdout.trim()
  t.match(token, /^stw_[A-Za-z0-9_-]{43}$/, 'stdout is the token alone (for $(…))')
  t.same((await app.inject({ url: '/me', headers: bearer(token) })).json(), { name: 'ci', role: 'operator' })

  const list = await cli('list')
  t.match(list.stdout, /^ci\s+operator\s+created/m)
  t.notMatch(list.stdout, token.slice(4))

  const bad = await cli('create', '--name', 'x', '--role', 'root')
  t.equal(bad.code, 2, 'a usage error')
  t.match(bad.stderr, /--role, one of: viewer, operator, admin/)
  const dup = await cli('create', '--name', 'ci', '--role', 'viewer')
  t.equal(dup.code, 1, 'a refusal')
  t.match(dup.stderr, /already exists/)

  t.equal((await cli('revoke', 'ci')).code, 0)
  t.equal((await app.inject({ url: '/runs', headers: bearer(token) })).statusCode, 401)
  const missing = await cli('revoke', 'ci')
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no live token is named "ci"/)
  const audit = (await app.inject('/audit?target=ci')).json().items
  t.same(
    audit.map((e: { action: string; actor: string }) => e.action),
    ['token.revoke', 'token.create'],
  )
  t.equal(audit[0].actor, `cli:${os.userInfo().username}`, 'the actor is the OS user')
})
