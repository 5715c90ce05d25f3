// Real Steward server processes for tests: `src/server.ts` on a free port, as `npm start` runs it.
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { freePort } from '../../src/db/embedded.js'
import { eventually } from '../helper.js'

export const ROOT = path.resolve(import.meta.dirname, '../..')

export interface ServerProcess {
  child: ChildProcess
  base: string
  output: () => string
  exited: Promise<number | null>
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

export async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort()
  let output = ''
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: childEnv({ PORT: String(port), LOG_LEVEL: 'info', ...env }),
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
  const json = async <T>(url: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(`${base}${url}`, {
      method: init.method ?? 'GET',
      headers: init.body === undefined ? {} : { 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    })
    return (res.status === 204 ? null : await res.json()) as T
  }
  return { child, base, output: () => output, exited, json }
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
