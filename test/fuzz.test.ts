// Property-based: random and hostile input at every endpoint of the spec. Whatever arrives, the
// answer is never a 5xx, and a request that is refused (4xx) changes nothing in the database.

import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildTestApp } from './helper.js'

interface Operation {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  path: string
  pathParams: string[]
  queryParams: string[]
  bodyProps: string[] | null
}

/** Every operation of the OpenAPI document, with the names of its parameters and body fields. */
function operationsOf(spec: {
  paths: Record<
    string,
    Record<string, { parameters?: { in: string; name: string }[]; requestBody?: unknown }>
  >
}): Operation[] {
  const ops: Operation[] = []
  for (const [path, methods] of Object.entries(spec.paths)) {
    // A Server-Sent Events stream never ends, so inject() would wait forever; test/events.test.ts
    // covers its input.
    if (path === '/events') continue
    for (const [method, op] of Object.entries(methods)) {
      if (method === 'head') continue
      const params = op.parameters ?? []
      const body = op.requestBody as
        | { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> }
        | undefined
      ops.push({
        method: method.toUpperCase() as Operation['method'],
        path,
        pathParams: params.filter((p) => p.in === 'path').map((p) => p.name),
        queryParams: params.filter((p) => p.in === 'query').map((p) => p.name),
        bodyProps: body ? Object.keys(body.content?.['application/json']?.schema?.properties ?? {}) : null,
      })
    }
  }
  return ops
}

const HOSTILE = [
  '',
  ' ',
  '0',
  '-1',
  '1e400',
  '-1e400',
  'NaN',
  'Infinity',
  '9007199254740993',
  '99999999999999999999999999',
  '1.5',
  'true',
  'null',
  '[]',
  '{}',
  '../../../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '/backups/../../data/pg.password',
  "'; drop table job_runs; --",
  "' or '1'='1",
  '$1',
  '%00',
  '\u0000',
  '%E0%A4%A',
  '<script>alert(1)</script>',
  '$' + '{jndi:ldap://x}',
  '🦀🔥 ünïcödé 漢字',
  '\ud800',
  'x'.repeat(5000),
  '* * * * * * *',
  '61 * * * *',
  'Europe/Atlantis',
  'cache-clear',
  'prune-runs',
  'viewer',
  'admin',
  'hourly',
  '2026-02-30T25:61:00Z',
  'bWFsaWNpb3Vz',
  'aWQ6OTk5OTk5OTk5OTk5OTk5OTk5',
]

const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
)

const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString,
    fc.integer(),
    fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53 + 1, -(2 ** 63), 1e308, 0.5),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 3 }),
  ),
})).value

/** Percent-encodes the UTF-8 bytes (lone surrogates included, as U+FFFD): always a valid URL part. */
const encode = (s: string) =>
  [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).padStart(2, '0')}`,
    )
    .join('')

const request = (ops: Operation[]) =>
  fc
    .record({
      op: fc.constantFrom(...ops),
      pathValues: fc.array(hostileString, { minLength: 3, maxLength: 3 }),
      query: fc.array(fc.tuple(fc.option(hostileString, { nil: undefined }), hostileString), {
        maxLength: 3,
      }),
      body: fc.oneof(
        fc.constant(undefined),
        hostileValue,
        fc.dictionary(hostileString, hostileValue, { maxKeys: 4 }),
        fc.string({ unit: 'binary', maxLength: 30 }).map((raw) => ({ raw })),
      ),
      fields: fc.array(hostileValue, { minLength: 6, maxLength: 6 }),
    })
    .map(({ op, pathValues, query, body, fields }) => {
      let i = 0
      const url = op.path.replace(/\{(\w+)\}/g, () => encode(pathValues[i++] ?? ''))
      const qs = query
        .map(
          ([key, value], j) =>
            `${encode(key ?? op.queryParams[j % Math.max(1, op.queryParams.length)] ?? 'x')}=${encode(value)}`,
        )
        .join('&')
      let payload: string | undefined
      if (op.bodyProps && op.bodyProps.length > 0 && body === undefined) {
        // A body with the declared fields, each one hostile: what gets past the first check.
        payload = JSON.stringify(
          Object.fromEntries(op.bodyProps.map((p, k) => [p, fields[k % fields.length]])),
        )
      } else if (body && typeof body === 'object' && 'raw' in body) payload = String(body.raw)
      else if (body !== undefined) payload = JSON.stringify(body)
      return { method: op.method, url: qs ? `${url}?${qs}` : url, payload }
    })

/** A fingerprint of everything a request could change. */
async function fingerprint(app: FastifyInstance): Promise<string> {
  const [row] = await app.sql<{ print: string }[]>`
    select concat_ws('|',
      (select md5(coalesce(string_agg(s::text, ',' order by s.name), '')) from schedules s),
      -- last_used_at is bookkeeping of reads, not a change a request makes
      (select md5(coalesce(string_agg((k.name, k.role, k.token_hash, k.revoked_at)::text, ',' order by k.id), ''))
         from api_tokens k),
      (select md5(coalesce(string_agg(b::text, ',' order by b.id), '')) from backups b),
      (select count(*) from job_runs),
      -- a refused change is recorded (access.denied): that is the audit log doing its job
      (select count(*) from audit_log where action <> 'access.denied')) as print`
  return row?.print ?? ''
}

t.test('hostile input at every endpoint: never a 5xx, and a refusal changes nothing', async (t) => {
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', RATE_LIMIT_MUTATIONS: '100000', AUTH_FAILURES_PER_MINUTE: '100000' },
  })
  const ops = operationsOf((await app.inject('/openapi.json')).json())
  t.ok(ops.length >= 25, `${ops.length} operations under test`)
  const seen = new Map<string, number>()

  await fc.assert(
    fc.asyncProperty(request(ops), async ({ method, url, payload }) => {
      const before = await fingerprint(app)
      const res = await app.inject({
        method,
        url,
        payload,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      })
      seen.set(String(res.statusCode), (seen.get(String(res.statusCode)) ?? 0) + 1)
      if (res.statusCode >= 500)
        throw new Error(`${method} ${url.slice(0, 200)} → ${res.statusCode} ${res.body}`)
      if (res.statusCode >= 400) {
        const after = await fingerprint(app)
        if (after !== before) throw new Error(`${method} ${url} → ${res.statusCode} but data changed`)
        const body = res.json()
        if (typeof body.message !== 'string' || body.message.length === 0)
          throw new Error(`${method} ${url} → ${res.statusCode} without a message`)
      }
    }),
    { numRuns: 400, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
  )
  t.ok((seen.get('400') ?? 0) > 0, `status codes seen: ${JSON.stringify(Object.fromEntries(seen))}`)
})

t.test('a viewer can change nothing, whatever it sends', async (t) => {
  const app = await buildTestApp(t, {
    env: { SCHEDULER_ENABLED: 'false', RATE_LIMIT_MUTATIONS: '100000', AUTH_FAILURES_PER_MINUTE: '100000' },
  })
  const created = await app.inject({
    method: 'POST',
    url: '/tokens',
    payload: { name: 'look', role: 'viewer' },
  })
  const viewer = `Bearer ${created.json().token}`
  const ops = operationsOf((await app.inject('/openapi.json')).json()).filter(
    (op) => op.method !== 'GET' && op.path !== '/schedules/preview',
  )
  const before = await fingerprint(app)
  await fc.assert(
    fc.asyncProperty(request(ops), async ({ method, url, payload }) => {
      const res = await app.inject({
        method,
        url,
        payload,
        headers: {
          authorization: viewer,
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        },
      })
      if (res.statusCode < 400 || res.statusCode >= 500)
        throw new Error(`${method} ${url.slice(0, 200)} as viewer → ${res.statusCode} ${res.body}`)
    }),
    { numRuns: 150 },
  )
  t.equal(await fingerprint(app), before, 'nothing changed')
})
