// GET /events streams and their tokens, over real sockets: a revoked token's streams end (revoked
// here, on another instance, or with the announcement lost), a token holds at most
// EVENTS_STREAMS_PER_TOKEN streams per instance, and a client that hangs up while it is being
// authenticated leaves no subscriber, stream or timer behind.
import { EventEmitter } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Run } from '../src/engine/run-store.js'
import type { Principal } from '../src/http/auth/tokens.js'
import { createEventStreams } from '../src/monitoring/event-streams.js'
import { testJobs } from './fixtures/jobs.js'
import { buildTestApp, createTestDatabase, eventually, TEST_ADMIN_TOKEN } from './helper.js'

interface Stream {
  status: number
  /** Everything received so far. */
  text(): string
  runs(): Run[]
  /** Whether the response has ended (or the client closed it). */
  ended(): boolean
  close(): void
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

function connect(port: number, token: string, path = '/events'): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        let ended = false
        res.on('close', () => {
          ended = true
        })
        resolve({
          status: res.statusCode ?? 0,
          text: () => text,
          runs: () =>
            text
              .split('\n\n')
              .filter((block) => block.startsWith('event: run\n'))
              .map((block) => JSON.parse(block.slice('event: run\ndata: '.length)) as Run),
          ended: () => ended,
          close: () => req.destroy(),
        })
      },
    )
    req.on('error', reject)
  })
}

async function createToken(app: FastifyInstance, name: string, role = 'viewer'): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/tokens', payload: { name, role } })
  if (res.statusCode !== 201) throw new Error(`POST /tokens: ${res.statusCode} ${res.body}`)
  return res.json().token
}

const trigger = async (app: FastifyInstance, job: string, args = {}) =>
  (await app.inject({ method: 'POST', url: `/jobs/${job}/runs`, payload: { args } })).json() as Run

/** Generous: a loaded machine may take seconds; what must be prompt is measured separately. */
const soon = <T>(check: () => Promise<T | undefined>, what?: string) => eventually(check, 15_000, what)

const FAST = { SCHEDULER_ENABLED: 'false', RUN_POLL_MS: '100', EVENTS_PING_MS: '150' }

t.test('a revoked token loses its streams at once, whichever instance revoked it', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const a = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { ...FAST, INSTANCE_ID: 'a' } })
  const b = await buildTestApp(t, { jobs: testJobs, databaseUrl, env: { ...FAST, INSTANCE_ID: 'b' } })
  const watcher = await createToken(a, 'watcher')
  const other = await createToken(a, 'other')
  const port = await listen(a)
  const streams = [
    await connect(port, watcher),
    await connect(port, watcher, '/events?job=sleeper'),
    await connect(port, other),
  ]
  t.teardown(() => {
    for (const stream of streams) stream.close()
  })
  const [first, second, third] = streams as [Stream, Stream, Stream]
  t.same(
    streams.map((s) => s.status),
    [200, 200, 200],
  )
  // Let the cache of both instances hold the token: the revoke must not wait for it to expire.
  t.equal((await b.inject({ url: '/me', headers: { authorization: `Bearer ${watcher}` } })).statusCode, 200)

  const revokedAt = Date.now()
  t.equal((await b.inject({ method: 'DELETE', url: '/tokens/watcher' })).statusCode, 204, 'revoked on b')
  await soon(async () => (first.ended() && second.ended() ? true : undefined))
  const took = Date.now() - revokedAt
  t.ok(took < 5000, `both streams on a ended ${took} ms after the revoke on b`)
  for (const stream of [first, second]) {
    t.match(stream.text(), /event: end\ndata: \{"message":"the token of this stream was revoked"\}\n\n$/)
  }
  const again = await a.inject({ url: '/events', headers: { authorization: `Bearer ${watcher}` } })
  t.equal(again.statusCode, 401, 'and it cannot open another')

  // Another token's stream is untouched, and still relays runs.
  const run = await trigger(a, 'sleeper')
  await soon(async () => third.runs().find((r) => r.id === run.id && r.state === 'succeeded'))
  t.notMatch(third.text(), /event: end/)

  t.equal((await a.inject({ method: 'DELETE', url: '/tokens/other' })).statusCode, 204, 'revoked here')
  await soon(async () => (third.ended() ? true : undefined))
  t.match(third.text(), /event: end\n/)
  await soon(async () => (a.runEvents.subscribers() === 0 ? true : undefined))
  t.same(a.eventStreams.stats(), { streams: 0, timers: 0 }, 'nothing left open')
})

t.test('a revoke whose announcement was lost is still seen by the periodic check', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: FAST })
  const quiet = await createToken(app, 'quiet')
  const principal: Principal = { name: 'quiet', role: 'viewer' }
  // The app's own streams re-check every 5 s; this one every 100 ms, with the app's tokens and feed.
  const streams = createEventStreams({
    runEvents: app.runEvents,
    tokens: app.tokens,
    perToken: 10,
    pingMs: 60_000,
    checkMs: 100,
    log: app.log,
  })
  t.teardown(() => streams.close())
  const connection = Object.assign(new EventEmitter(), { destroyed: false })
  const admin = Object.assign(new EventEmitter(), { destroyed: false })
  const open = (token: string, conn: EventEmitter & { destroyed: boolean }, who = principal) => {
    const opened = streams.open({ token, principal: who, connection: conn, log: app.log })
    if (!('stream' in opened)) throw new Error(opened.refused)
    let text = ''
    opened.stream.setEncoding('utf8')
    opened.stream.on('data', (chunk: string) => {
      text += chunk
    })
    let ended = false
    opened.stream.on('end', () => {
      ended = true
    })
    return { text: () => text, ended: () => ended }
  }
  const watched = open(quiet, connection)
  const env = open(TEST_ADMIN_TOKEN, admin, { name: 'STEWARD_ADMIN_TOKEN', role: 'admin' })
  await new Promise((r) => setTimeout(r, 300))
  t.same(streams.stats(), { streams: 2, timers: 2 }, 'live tokens keep their streams through checks')

  // Revoked behind the server's back: no NOTIFY, so only the periodic check can see it.
  await app.sql`update api_tokens set revoked_at = now() where name = 'quiet'`
  await soon(async () => (watched.ended() ? true : undefined))
  t.match(watched.text(), /event: end\n/)
  t.same(streams.stats(), { streams: 1, timers: 2 }, "the environment's token is never revoked")
  admin.emit('close')
  await soon(async () => (env.ended() ? true : undefined))
  t.same(streams.stats(), { streams: 0, timers: 0 }, 'no timer runs without streams')
})

t.test('one token holds at most EVENTS_STREAMS_PER_TOKEN streams per instance', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: { ...FAST, EVENTS_STREAMS_PER_TOKEN: '2' } })
  const viewer = await createToken(app, 'viewer')
  const port = await listen(app)
  const streams = [await connect(port, TEST_ADMIN_TOKEN), await connect(port, TEST_ADMIN_TOKEN)]
  t.teardown(() => {
    for (const stream of streams) stream.close()
  })
  const refused = await connect(port, TEST_ADMIN_TOKEN)
  await soon(async () => (refused.ended() ? true : undefined))
  t.equal(refused.status, 429)
  t.match(JSON.parse(refused.text()), {
    statusCode: 429,
    message:
      /has 2 event streams open on this server instance.*EVENTS_STREAMS_PER_TOKEN=2, counted per instance/,
  })

  const another = await connect(port, viewer)
  streams.push(another)
  t.equal(another.status, 200, 'another token has its own allowance')

  streams[0]?.close()
  const replacement = await soon(async () => {
    const next = await connect(port, TEST_ADMIN_TOKEN)
    if (next.status === 200) return next
    await soon(async () => (next.ended() ? true : undefined))
  })
  streams.push(replacement)
  t.equal(replacement.status, 200, 'a closed stream gives its place back')
})

/** Open connections to the app's server. */
const connections = (app: FastifyInstance) =>
  new Promise<number>((resolve, reject) =>
    app.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
  )

t.test('clients that hang up while they are being authenticated leave nothing behind', async (t) => {
  const app = await buildTestApp(t, { jobs: testJobs, env: FAST })
  const port = await listen(app)
  const token = await createToken(app, 'flaky')
  const head = (who: string) =>
    `GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${who}\r\n\r\n`

  // Authentication held (a slow database) until the client is gone, then let through: the handler
  // runs for a response that has already closed.
  const authenticate = app.tokens.authenticate
  let arrived = () => {}
  let release = Promise.resolve()
  app.tokens.authenticate = async (given) => {
    arrived()
    await release
    return authenticate(given)
  }
  for (let i = 0; i < 20; i++) {
    let open = () => {}
    release = new Promise((resolve) => {
      open = resolve
    })
    const inAuthentication = new Promise<void>((resolve) => {
      arrived = resolve
    })
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(head(i % 2 ? token : TEST_ADMIN_TOKEN))
    await inAuthentication
    socket.resetAndDestroy()
    await soon(async () => ((await connections(app)) === 0 ? true : undefined), 'the reset to arrive')
    open()
  }
  app.tokens.authenticate = authenticate

  // Resets at random points of the handshake, with authentication going to the database each time.
  for (let i = 0; i < 50; i++) {
    app.tokens.forget()
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(head(token))
    if (i % 2) await new Promise((r) => setImmediate(r))
    socket.resetAndDestroy()
  }

  // A stream opened after all of them is served after their handlers ran; once it is closed too,
  // nothing may remain.
  // Its own token: streams leaked by the others would count against theirs.
  const last = await connect(port, await createToken(app, 'last'))
  await soon(async () => (last.text().includes(': connected') ? true : undefined), 'a stream')
  t.equal(app.runEvents.subscribers(), 1, 'only the stream still open subscribes')
  last.close()
  await soon(async () => ((await connections(app)) === 0 ? true : undefined), 'no connection')
  await soon(async () => (app.runEvents.subscribers() === 0 ? true : undefined), 'no subscriber')
  t.same(app.eventStreams.stats(), { streams: 0, timers: 0 }, 'no stream, no ping or check timer')
})
