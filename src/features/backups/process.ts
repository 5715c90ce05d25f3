// Running a client tool as a child process that obeys an AbortSignal: SIGTERM when the signal aborts,
// SIGKILL if it is still alive 10 s later, and its stderr kept (trimmed) for the error it becomes.
import { type ChildProcess, spawn } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { BackupError, type Tool } from './tools.js'

export const KILL_GRACE_MS = 10_000
const STDERR_LIMIT = 16 * 1024

export interface ToolExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** Spawning failed (ENOENT, EACCES). */
  error?: Error
  stderr: string
}

export interface ToolProcess {
  child: ChildProcess
  stdout: Readable
  /** Only when started with stdin: 'pipe'. */
  stdin: Writable | null
  /** Settles when the process has exited and its output is closed; never rejects. */
  exited: Promise<ToolExit>
}

export interface StartOptions {
  env: NodeJS.ProcessEnv
  signal: AbortSignal
  stdin?: 'ignore' | 'pipe'
  killGraceMs?: number
}

/** Keeps the last STDERR_LIMIT characters: the end of the output says what went wrong. */
function collect(stream: Readable | null): () => string {
  let text = ''
  stream?.setEncoding('utf8')
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-STDERR_LIMIT)
  })
  return () => text.trim()
}

export function startTool(tool: Tool, args: string[], options: StartOptions): ToolProcess {
  const child = spawn(tool.path, args, {
    env: options.env,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  })
  const stderr = collect(child.stderr)
  let killTimer: NodeJS.Timeout | undefined
  const onAbort = () => {
    child.kill('SIGTERM')
    killTimer = setTimeout(() => child.kill('SIGKILL'), options.killGraceMs ?? KILL_GRACE_MS)
  }
  if (options.signal.aborted) onAbort()
  else options.signal.addEventListener('abort', onAbort, { once: true })
  const exited = new Promise<ToolExit>((resolve) => {
    const done = (exit: Omit<ToolExit, 'stderr'>) => {
      clearTimeout(killTimer)
      options.signal.removeEventListener('abort', onAbort)
      resolve({ ...exit, stderr: stderr() })
    }
    child.once('error', (error) => done({ code: null, signal: null, error }))
    child.once('close', (code, signal) => done({ code, signal }))
  })
  return { child, stdout: child.stdout as Readable, stdin: child.stdin, exited }
}

/** Why a tool did not succeed, as the error a run records (null when it did). */
export function toolFailure(tool: Tool, exit: ToolExit): BackupError | null {
  if (exit.error) {
    const missing = (exit.error as NodeJS.ErrnoException).code === 'ENOENT'
    return new BackupError(
      missing ? `${tool.name}_missing` : 'spawn_failed',
      `${tool.name} (${tool.path}) could not be started: ${exit.error.message}`,
      !missing,
    )
  }
  if (exit.code === 0) return null
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`
  const message = `${tool.name} ${how}${exit.stderr ? `: ${exit.stderr}` : ''}`
  // Retrying cannot make a database exist; anything else (a restart, a lock) may pass next time.
  if (/database "[^"]*" does not exist/.test(exit.stderr ?? ''))
    return new BackupError('database_missing', message, false)
  return new BackupError('exit_code', message)
}

/** Runs a tool to completion; rejects with its stderr when it fails, or with the abort reason. */
export async function runTool(tool: Tool, args: string[], options: StartOptions): Promise<string> {
  const proc = startTool(tool, args, options)
  proc.stdout.resume()
  const exit = await proc.exited
  options.signal.throwIfAborted()
  const failure = toolFailure(tool, exit)
  if (failure) throw failure
  return exit.stderr
}
