// A run's own log and progress (issue 15): lines kept in order and readable after a restart, the
// caps, following a run that runs on another instance, progress on the run and in the change feed.
import type { FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t from 'tap'
import { Type } from 'typebox'
import { jobs as registered } from '../src/app.js'
import { type AnyJob, defineJob } from '../src/engine/job.js'
import type { LogLine } from '../src/engine/run-log.js'
import type { Run } from '../src/engine/run-store.js'
import { buildTestApp, createTestDatabase, eventually, TEST_ADMIN_TOKEN } from './helper.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Writes `lines` lines (every tenth a warning with fields), `every` ms apart, reporting progress. */
const chatty = defineJob({
  name: 'chatty',
  description: 'test: logs lines and progress',
  args: Type.Object({
    lines: Type.Integer({ minimum: 0, default: 5 }),
    every: Type.Integer({ minimum: 0, default: 0 }),
    fail: Type.Boolean({ default: false }),
  }),
  timeoutMs: 60_000,
  maxAttempts: 1,
  async run({ args, log, progress }) {
    for (let i = 1; i <= args.lines; i++) {
      if (i % 10 === 0) log.warn(`line ${i}`, { i, err: new Error(`problem ${i}`) })
      else log.info(`line ${i}`)
      progress({ done: i, total: args.lines, unit: 'lines' })
      if (args.every > 0) await sleep(args.every)
    }
    if (args.fail) throw new Error('chatty gave up')
    return { lines: args.lines }
  },
})

const jobs: AnyJob[] = [...registered, chatty as AnyJob]

async function finished(app: FastifyInstance, id: number): Promise<Run> {
  return eventually(
    async () => {
      const run = (await app.inject(`/runs/${id}`)).json<Run>()
      return ['succeeded', 'failed', 'cancelled'].includes(run.state) ? run : undefined
    },
    60_000,
    `run ${id} to end`,
  )
}

async function trigger(app: FastifyInstance, args: Record<string, unknown>): Promise<Run> {
  const res = await app.inject({ method: 'POST', url: '/jobs/chatty/runs', payload: { args } })
  if (res.statusCode !== 202) throw new Error(res.body)
  return res.json<Run>()
}

async function allLines(app: FastifyInstance, id: number, limit = 1000): Promise<LogLine[]> {
  const lines: LogLine[] = []
  let after = 0
  for (;;) {
    const res = await app.inject(`/runs/${id}/logs?after=${after}&limit=${limit}`)
    const page = res.json<{ items: LogLine[]; nextCursor: string | null }>()
    lines.push(...page.items)
    if (page.nextCursor === null) return lines
    after = Number(page.nextCursor)
  }
}

t.test('lines are kept in order, with fields and levels, and read the same after a restart', async (t) => {
  const url = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false' }
  const first = await buildTestApp(t, { jobs, databaseUrl: url, env })
  const run = await trigger(first, { lines: 25 })
  await finished(first, run.id)

  const lines = await allLines(first, run.id, 7)
  t.same(
    lines.map((l) => l.seq),
    Array.from({ length: 27 }, (_, i) => i + 1),
    'numbered from 1 without gaps, oldest first, across pages of 7',
  )
  t.match(lines[0], { level: 'info', message: /^run started on /, fields: { attempt: 1, trigger: 'manual' } })
  t.same(
    lines.slice(1, 26).map((l) => l.message),
    Array.from({ length: 25 }, (_, i) => `line ${i + 1}`),
  )
  t.match(lines[10], {
    level: 'warn',
    message: 'line 10',
    fields: { i: 10, err: { type: 'Error', message: 'problem 10' } },
  })
  t.match(lines[26], { level: 'info', message: 'job succeeded' })
  t.ok(
    lines.every((l, i) => i === 0 || l.at >= (lines[i - 1] as LogLine).at),
    'times never go back',
  )
  await first.close()

  const second = await buildTestApp(t, { jobs, databaseUrl: url, env })
  t.same(await allLines(second, run.id), lines, 'the same lines after a restart')
  const tail = (await second.inject(`/runs/${run.id}/logs?after=25`)).json()
  t.same(
    tail.items.map((l: LogLine) => l.seq),
    [26, 27],
  )
  t.equal(tail.nextCursor, null)
})

t.test('bad requests: unknown run 404, bad paging 400, follow without SSE 406', async (t) => {
  const app = await buildTestApp(t, { jobs, env: { SCHEDULER_ENABLED: 'false' } })
  const missing = await app.inject('/runs/999999/logs')
  t.equal(missing.statusCode, 404)
  t.match(missing.json().message, /run 999999 does not exist/)
  t.equal((await app.inject('/runs/1/logs?limit=0')).statusCode, 400)
  t.equal((await app.inject('/runs/1/logs?after=-1')).statusCode, 400)
  const run = await trigger(app, { lines: 1 })
  await finished(app, run.id)
  const notSse = await app.inject(`/runs/${run.id}/logs?follow=true`)
  t.equal(notSse.statusCode, 406)
  t.match(notSse.json().message, /Accept: text\/event-stream/)
  const viewer = await app.inject({
    method: 'POST',
    url: '/tokens',
    payload: { name: 'watcher', role: 'viewer' },
  })
  const page = await app.inject({
    url: `/runs/${run.id}/logs`,
    headers: { authorization: `Bearer ${viewer.json().token}` },
  })
  t.equal(page.statusCode, 200, 'a viewer reads logs')
  t.equal((await app.inject({ url: `/runs/${run.id}/logs`, headers: { authorization: '' } })).statusCode, 401)
})

t.test('a run writing 50,000 lines keeps 10,000 and one line saying how many were dropped', async (t) => {
  const app = await buildTestApp(t, { jobs, env: { SCHEDULER_ENABLED: 'false' } })
  const run = await trigger(app, { lines: 50_000 })
  t.equal((await finished(app, run.id)).state, 'succeeded')
  const lines = await allLines(app, run.id)
  const job = lines.filter((l) => /^line /.test(l.message))
  t.equal(job.length, 10_000, 'the first 10,000 of the job')
  t.equal(job[9999]?.message, 'line 10000')
  const drop = lines.find((l) => /not kept/.test(l.message))
  t.match(drop, { level: 'warn', fields: { dropped: 40_000 } })
  t.match(drop?.message, /40000 more lines were not kept: this run's log reached RUN_LOG_MAX_LINES \(10000\)/)
  t.equal(lines.length, 10_003, 'with the start, the drop line and the end')
  t.equal(lines[lines.length - 1]?.message, 'job succeeded')
})

t.test('the byte cap, and RUN_LOG_MAX_LINES=0 keeps nothing', async (t) => {
  const url = await createTestDatabase(t)
  const small = await buildTestApp(t, {
    jobs,
    databaseUrl: url,
    env: { SCHEDULER_ENABLED: 'false', RUN_LOG_MAX_BYTES: '100' },
  })
  const run = await trigger(small, { lines: 30 })
  await finished(small, run.id)
  const lines = await allLines(small, run.id)
  const kept = lines.filter((l) => /^line /.test(l.message))
  t.ok(kept.length > 5 && kept.length < 20, `${kept.length} lines fit in 100 bytes`)
  t.match(lines.at(-2)?.message, /more lines were not kept: this run's log reached 100 bytes/)
  await small.close()

  const none = await buildTestApp(t, {
    jobs,
    databaseUrl: url,
    env: { SCHEDULER_ENABLED: 'false', RUN_LOG_MAX_LINES: '0' },
  })
  const quiet = await trigger(none, { lines: 30 })
  t.equal((await finished(none, quiet.id)).state, 'succeeded')
  t.same(await allLines(none, quiet.id), [])
})

t.test('lines are deleted with their run', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildTestApp(t, { jobs, databaseUrl: url, env: { SCHEDULER_ENABLED: 'false' } })
  const run = await trigger(app, { lines: 3 })
  await finished(app, run.id)
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => sql.end())
  const [before] = await sql`select count(*)::int as n from run_logs where run_id = ${run.id}`
  t.equal(before?.n, 5)
  await sql`delete from job_runs where id = ${run.id}`
  const [after] = await sql`select count(*)::int as n from run_logs where run_id = ${run.id}`
  t.equal(after?.n, 0)
})

/** Reads an SSE response into events until it ends. */
async function readEvents(res: Response): Promise<Array<{ event: string; data: unknown }>> {
  const events: Array<{ event: string; data: unknown }> = []
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return events
    buffer += decoder.decode(value, { stream: true })
    let cut = buffer.indexOf('\n\n')
    while (cut >= 0) {
      const block = buffer.slice(0, cut)
      buffer = buffer.slice(cut + 2)
      cut = buffer.indexOf('\n\n')
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (event && data) events.push({ event, data: JSON.parse(data) })
    }
  }
}

t.test('following a run that runs on another instance: past lines, new lines, then end', async (t) => {
  const url = await createTestDatabase(t)
  const env = { SCHEDULER_ENABLED: 'false' }
  // Only the runner has the job, so the run cannot start on the instance being followed.
  const runner = await buildTestApp(t, { jobs, databaseUrl: url, env: { ...env, INSTANCE_ID: 'runner' } })
  const viewer = await buildTestApp(t, {
    jobs: registered,
    databaseUrl: url,
    env: { ...env, INSTANCE_ID: 'viewer' },
  })
  const address = await viewer.listen({ port: 0, host: '127.0.0.1' })
  const run = await trigger(runner, { lines: 30, every: 60 })
  await eventually(async () => ((await allLines(runner, run.id)).length >= 5 ? true : undefined), 10_000)

  const res = await fetch(`${address}/runs/${run.id}/logs?follow=true`, {
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, accept: 'text/event-stream' },
  })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /text\/event-stream/)
  const events = await readEvents(res)
  const logs = events.filter((e) => e.event === 'log').map((e) => e.data as LogLine)
  t.same(
    logs.map((l) => l.seq),
    Array.from({ length: 32 }, (_, i) => i + 1),
    'every line once, in order',
  )
  const end = events.at(-1)
  t.equal(end?.event, 'end', 'the last event says the run ended')
  t.match(end?.data, { id: run.id, state: 'succeeded', instance: 'runner' })
  t.equal(viewer.runLogs.following(), 0, 'the follower is gone once the stream closed')

  // Resuming from a seq, and a finished run: only what is after it, then the end at once.
  const resumed = await fetch(`${address}/runs/${run.id}/logs?follow=true&after=30`, {
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, accept: 'text/event-stream' },
  })
  t.same(
    (await readEvents(resumed)).map((e) => (e.event === 'log' ? (e.data as LogLine).seq : e.event)),
    [31, 32, 'end'],
  )
})

t.test('a followed run that is deleted ends the stream with event: gone', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildTestApp(t, { jobs, databaseUrl: url, env: { SCHEDULER_ENABLED: 'false' } })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const run = await trigger(app, { lines: 60, every: 50 })
  await eventually(async () => ((await allLines(app, run.id)).length >= 3 ? true : undefined), 10_000)
  const res = await fetch(`${address}/runs/${run.id}/logs?follow=true`, {
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, accept: 'text/event-stream' },
  })
  const reading = readEvents(res)
  await eventually(async () => (app.runLogs.following() === 1 ? true : undefined), 5_000)
  // By hand, as an operator might: pruning only takes runs that have ended.
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => sql.end())
  await sql`delete from job_runs where id = ${run.id}`
  const events = await reading
  t.same(events.at(-1), { event: 'gone', data: { id: run.id, message: `run ${run.id} was deleted` } })
  t.equal(app.runLogs.following(), 0, 'the follower is gone')
})

t.test('progress: on the run while it runs, in lists and the change feed, and at its end', async (t) => {
  const app = await buildTestApp(t, { jobs, env: { SCHEDULER_ENABLED: 'false' } })
  const seen: Run[] = []
  const unsubscribe = app.runEvents.subscribe((run) => {
    if (run.job === 'chatty') seen.push(run)
  })
  t.teardown(unsubscribe)
  const run = await trigger(app, { lines: 40, every: 75 })
  const readings = new Set<number>()
  await eventually(async () => {
    const now = (await app.inject(`/runs/${run.id}`)).json<Run>()
    if (now.progress && now.state === 'running') readings.add(now.progress.done)
    return now.state === 'succeeded' ? now : undefined
  }, 30_000)
  t.ok(readings.size >= 2, `readings grew while it ran: ${[...readings].join(', ')}`)
  const done = (await app.inject(`/runs/${run.id}`)).json<Run>()
  t.match(done.progress, { done: 40, total: 40, unit: 'lines' }, 'the last reading is stored at the end')
  t.ok(Date.parse(String(done.progress?.updatedAt)) <= Date.parse(String(done.finishedAt)))
  const listed = (await app.inject('/runs?job=chatty')).json<{ items: Run[] }>().items[0]
  t.same(listed?.progress, done.progress, 'lists show it')
  await eventually(async () => (seen.some((r) => r.state === 'running' && r.progress) ? true : undefined))
  const fed = seen.filter((r) => r.state === 'running' && r.progress).map((r) => r.progress?.done ?? 0)
  t.ok(
    fed.every((d, i) => i === 0 || d >= (fed[i - 1] as number)),
    `the change feed carried growing readings: ${fed.join(', ')}`,
  )
  // At most one stored reading a second: a 3 s run stores a handful, not 40.
  t.ok(fed.length <= 6, `${fed.length} readings published for 40 reports`)
})
