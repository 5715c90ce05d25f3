// Real Steward server processes for tests: `src/server.ts` on a free port, as `npm start` runs it.
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { freePort } from '../../src/db/embedded.js'
import { eventually, TEST_ADMIN_TOKEN } from '../helper.js'

export const ROOT = path.resolve(import.meta.dirname, '../..')

export interface ServerProcess {
  child: ChildProcess
  base: string
  output: () => string
  exited: Promise<number | null>
  /** The admin token: STEWARD_ADMIN_TOKEN, or the one the first start wrote to DATA_DIR/admin-token. */
  token: string
  /** fetch() against this server (path only), with the admin token. */
  fetch: (url: string, init?: RequestInit) => Promise<Response>
  /** fetch() against this server, parsed as JSON. */
  json: <T = unknown>(url: string, init?: { method?: string; body?: unknown }) => Promise<T>
}

/**
 * The environment for a child process, with tap's coverage off: tap instruments every child it can
 * see, and these run TypeScript through another loader (tsx) and get killed mid-test (SIGKILL),
 * which spoils the run's merged coverage report. Coverage comes from the in-process tests.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
}

/**
 * Starts `src/server.ts` (directly, or through `npm start`) and waits until it is ready. STEWARD_ADMIN_TOKEN is TEST_ADMIN_TOKEN unless
 * `env` sets it (to '' for none: the server then creates one in DATA_DIR/admin-token).
 */
export async function startServer(
  env: Record<string, string>,
  options: { via?: 'node' | 'npm start' } = {},
): Promise<ServerProcess> {
  const port = await freePort()
  let output = ''
  const fullEnv: Record<string, string> = {
    PORT: String(port),
    LOG_LEVEL: 'info',
    STEWARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    // As for in-process test apps (testConfig): on a machine loaded by parallel test files, a process
    // can go unscheduled for a second, and its lag meter would then shed the test's requests with a
    // 503 (a cluster test once lost the POST creating its schedule that way, and saw 0 fires).
    OVERLOAD_EVENT_LOOP_DELAY_MS: '30000',
    ...env,
  }
  // `npm start` as deployments run it (npm → sh → node), or node itself.
  const [command, args] =
    options.via === 'npm start'
      ? ['npm', ['start', '--silent']]
      : [process.execPath, ['--import', 'tsx', 'src/server.ts']]
  const child = spawn(command, args, {
    cwd: ROOT,
    env: childEnv(fullEnv),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout?.on('data', (d) => {
    output += d
  })
  child.stderr?.on('data', (d) => {
    output += d
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const base = `http://127.0.0.1:${port}`
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`server exited early:\n${output}`)
      const res = await fetch(`${base}/ready`).catch(() => null)
      return res?.status === 200 ? true : undefined
    },
    60_000,
    'the server to be ready',
  )
  const token =
    fullEnv.STEWARD_ADMIN_TOKEN ||
    (await fs.readFile(path.join(fullEnv.DATA_DIR ?? 'data', 'admin-token'), 'utf8')).trim()
  const authorized = (url: string, init: RequestInit = {}) =>
    fetch(`${base}${url}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } })
  const json = async <T>(url: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await authorized(url, {
      method: init.method ?? 'GET',
      headers: init.body === undefined ? {} : { 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    })
    return (res.status === 204 ? null : await res.json()) as T
  }
  return { child, base, output: () => output, exited, token, fetch: authorized, json }
}

/** Processes whose command line mentions `needle` (a postgres server and its workers, say). */
export async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes(needle)) pids.push(Number(entry))
  }
  return pids
}

/** Runs a command in the repository to its end: its exit code, stdout and stderr. */
export function runCommand(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d) => {
      stdout += d
    })
    child.stderr?.on('data', (d) => {
      stderr += d
    })
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}
