// GET /events over a real port: headers, run changes as they happen (the same JSON as GET
// /runs/{id}), from another instance too, the job filter, pings, bulk and oversized changes,
// cleanup on disconnect, and an app that closes with streams open.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Run } from '../src/engine/run-store.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually, TEST_ADMIN_TOKEN } from './helper.js'

interface Stream {
  status: number
  headers: http.IncomingHttpHeaders
  /** Everything received so far. */
  text(): string
  runs(): Run[]
  ended: Promise<void>
  close(): void
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

function connect(port: number, path = '/events'): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        const ended = new Promise<void>((done) => res.on('close', () => done()))
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: () => text,
          runs: () =>
            text
              .split('\n\n')
              .filter((block) => block.startsWith('event: run\n'))
              .map((block) => JSON.parse(block.slice('event: run\ndata: '.length)) as Run),
          ended,
          close: () => req.destroy(),
        })
      },
    )
    req.on('error', reject)
  })
}

const trigger = async (app: FastifyInstance, job: string, args = {}) =>
  (await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })).json() as Run

/** Generous: a loaded machine may take seconds; nothing here measures time. */
const soon = <T>(check: () => Promise<T | undefined>) => eventually(check, 15_000)

const FAST = { SCHEDULER_ENABLED: 'false', RUN_POLL_MS: '100', EVENTS_PING_MS: '150' }

t.test('a run is streamed as it changes, as GET /runs/{id} shows it', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: FAST })
  const stream = await connect(await listen(app))
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  t.match(stream.headers['cache-control'], /no-cache/)
  t.equal(stream.headers['x-accel-buffering'], 'no')

  const run = await trigger(app, 'sleeper', { ms: 50, label: 'watched' })
  const states = await soon(async () => {
    const seen = stream.runs().filter((r) => r.id === run.id)
    return seen.at(-1)?.state === 'succeeded' ? seen : undefined
  })
  t.same(
    states.map((r) => r.state),
    ['queued', 'running', 'succeeded'],
  )
  const shown = (await app.inject(`/runs/${run.id}`)).json()
  t.same(states.at(-1), shown, 'the final event is the run as the API shows it')
  t.equal(states[0]?.startedAt, null, 'each event is the run as it was then')
  t.match(
    await soon(async () => (stream.text().includes(': ping\n\n') ? stream.text() : undefined)),
    /: ping/,
  )
})

t.test('?job= filters; runs of another instance arrive too', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  // a polls for queued work only once a minute, so b (where the runs are triggered) executes them.
  const a = await buildTestApp(t, {
    jobs: testJobs,
    databaseUrl,
    env: { ...FAST, INSTANCE_ID: 'a', RUN_POLL_MS: '60000' },
  })
  const b = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { ...FAST, INSTANCE_ID: 'b' } })
  const port = await listen(a)
  const all = await connect(port)
  const booms = await connect(port, '/events?job=boom')
  t.teardown(() => {
    all.close()
    booms.close()
  })
  const sleeping = await trigger(b, 'sleeper')
  const failing = await trigger(b, 'boom')
  const last = await soon(async () => booms.runs().find((r) => r.id === failing.id && r.state === 'failed'))
  t.equal(last.instance, 'b', 'executed by the other instance')
  t.same(new Set(booms.runs().map((r) => r.job)), new Set(['boom']), 'only boom runs')
  await soon(async () => all.runs().find((r) => r.id === sleeping.id && r.state === 'succeeded'))
  t.ok(
    all.runs().some((r) => r.job === 'boom'),
    'the unfiltered stream has both',
  )

  for (const query of ['job=', `job=${'x'.repeat(101)}`, 'nope=1', 'job=a&job=b']) {
    t.equal((await a.inject(`/events?${query}`)).statusCode, 400, `?${query.slice(0, 20)} is refused`)
  }
  const anonymous = await a.inject({ url: '/events', headers: { authorization: '' } })
  t.equal(anonymous.statusCode, 401, 'needs a token')
})

t.test('bulk and oversized changes are relayed by id and read back', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: FAST })
  const stream = await connect(await listen(app), '/events?job=imported')
  t.teardown(() => stream.close())
  // One statement, 150 runs: announced as lists of ids, not 150 notifications.
  await app.sql`
    insert into job_runs (job, trigger, state, args, finished_at)
    select 'imported', 'manual', 'succeeded', jsonb_build_object('n', i), now() from generate_series(1, 150) i`
  const bulk = await soon(async () => (stream.runs().length === 150 ? stream.runs() : undefined))
  t.same(
    bulk.map((r) => r.args.n),
    Array.from({ length: 150 }, (_, i) => i + 1),
    'every run, in order',
  )
  // A row too big for NOTIFY's 8000 bytes.
  const big = 'x'.repeat(20_000)
  const [row] = await app.sql`
    insert into job_runs (job, trigger, state, args) values ('imported', 'manual', 'queued', ${app.sql.json({ big })})
    returning id`
  const relayed = await soon(async () => stream.runs().find((r) => r.id === Number(row?.id)))
  t.equal(relayed.args.big, big, 'read back in full')
})

t.test('a client that hangs up is forgotten; closing the app ends open streams', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: FAST })
  const port = await listen(app)
  const first = await connect(port)
  const second = await connect(port)
  await soon(async () => (app.runEvents.subscribers() === 2 ? true : undefined))
  first.close()
  await soon(async () => (app.runEvents.subscribers() === 1 ? true : undefined))
  await first.ended

  // Closing must not wait for the client to hang up.
  await app.close()
  await second.ended
  t.equal(app.runEvents.subscribers(), 0)
})
