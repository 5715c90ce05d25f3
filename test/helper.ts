// Test helpers: each test file gets its own database cloned from the run's migrated template, and
// an app built by the same factory the server uses.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import type { FastifyInstance, InjectOptions } from 'fastify'
import postgres from 'postgres'
import type { Test } from 'tap'
import { type BuildOptions, buildApp, jobs as registeredJobs } from '../src/app.js'
import { type Config, loadConfig } from '../src/config.js'
import type { AnyJob } from '../src/engine/job.js'
import { defaultSchedules } from '../src/engine/schedule-store.js'
import { STATE_FILE, type TestDbState } from './support/state.js'

async function state(): Promise<TestDbState> {
  const text = await fs.readFile(STATE_FILE, 'utf8').catch(() => {
    throw new Error('no test database: run tests through `npm test` (tap starts one before the files)')
  })
  return JSON.parse(text) as TestDbState
}

/** A fresh, migrated database for this test, dropped at teardown. Returns its URL. */
export async function createTestDatabase(t: Test): Promise<string> {
  const { adminUrl, template } = await state()
  const name = `steward_test_${randomBytes(6).toString('hex')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin`create database ${admin(name)} template ${admin(template)}`
  t.teardown(async () => {
    await admin`drop database if exists ${admin(name)} with (force)`
    await admin.end()
  })
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

export interface TestAppOptions extends BuildOptions {
  env?: Record<string, string>
  /** An existing database URL (to share one between several apps); a fresh one otherwise. */
  databaseUrl?: string
}

/** The admin token (STEWARD_ADMIN_TOKEN) of every test app and test server. */
export const TEST_ADMIN_TOKEN = 'stw_test-admin-token-0123456789abcdefghijklmnop'

export async function testConfig(t: Test, options: TestAppOptions = {}): Promise<Config> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase(t))
  return loadConfig({
    DATABASE_URL: databaseUrl,
    SHUTDOWN_GRACE_MS: '2000',
    STEWARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    // Shedding on event-loop lag is tested on its own (health.test.ts sheds on the heap); on a CI
    // machine loaded by parallel test files a lagging loop would shed ordinary test requests.
    OVERLOAD_EVENT_LOOP_DELAY_MS: '30000',
    ...options.env,
  })
}

/**
 * An app on its own database; closed at teardown. Its `inject` sends the admin token unless the
 * request sets `authorization` itself (to '' for none).
 */
export async function buildTestApp(t: Test, options: TestAppOptions = {}): Promise<FastifyInstance> {
  const config = await testConfig(t, options)
  const app = await buildApp(config, options)
  t.teardown(() => app.close())
  await app.ready()
  const inject = app.inject.bind(app)
  app.inject = ((request?: string | InjectOptions) => {
    if (request === undefined) return inject()
    const opts = typeof request === 'string' ? { url: request } : request
    const headers: Record<string, unknown> = { ...opts.headers }
    if (!('authorization' in headers)) headers.authorization = `Bearer ${config.adminToken}`
    else if (headers.authorization === '') delete headers.authorization
    return inject({ ...opts, headers: headers as InjectOptions['headers'] })
  }) as typeof app.inject
  return app
}

/** Polls until `check` returns a value (not undefined), or fails after `ms`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  ms = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The default schedules seeded for these jobs (those the jobs declare). */
export function seededScheduleNames(jobList: AnyJob[] = registeredJobs): string[] {
  return defaultSchedules(jobList)
    .map((s) => s.name)
    .sort()
}
