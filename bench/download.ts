// Benchmark: GET /backups/{id}/download throughput against `cat file > /dev/null` on the same file
// (goal: ratio ≥ 0.8), from the page cache and, where it can be dropped (root on Linux), from disk;
// and the server's RSS growth while it streams a file of more than 200 MB (goal: ≤ 50 MB over
// idle). The server is a real `src/server.ts` process, so its memory is its own; the client is curl
// writing to /dev/null. Run: node --import tsx bench/download.ts
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../src/db/embedded.js'
import { benchDatabases, log, machine, mb, median, ROUNDS, timeRedirected } from './backup-support.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function rss(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

/** Samples a process's RSS every 10 ms while `work` runs; returns the peak. */
async function peakRssDuring<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = await rss(pid)
  const timer = setInterval(() => {
    rss(pid).then(
      (r) => {
        peak = Math.max(peak, r)
      },
      () => {},
    )
  }, 10)
  try {
    return { value: await work(), peak }
  } finally {
    clearInterval(timer)
  }
}

/** Empties the page cache (root on Linux only), so the next read comes from the disk. */
async function dropCaches(): Promise<boolean> {
  try {
    await timeRedirected('sync', [], '/dev/null')
    await fs.writeFile('/proc/sys/vm/drop_caches', '1')
    return true
  } catch {
    return false
  }
}

async function startServer(env: NodeJS.ProcessEnv, port: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    if (
      await fetch(`${base}/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { child, base }
    await new Promise((r) => setTimeout(r, 100))
  }
  child.kill('SIGKILL')
  throw new Error('the server did not start')
}

async function backUp(base: string) {
  const res = await fetch(`${base}/jobs/database-backup/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ args: { type: 'manual' } }),
  })
  let run = await res.json()
  while (['queued', 'running'].includes(run.state)) {
    await new Promise((r) => setTimeout(r, 200))
    run = await (await fetch(`${base}/runs/${run.id}`)).json()
  }
  if (run.state !== 'succeeded') throw new Error(`backup failed: ${JSON.stringify(run.error)}`)
  return run.result.backups[0] as { id: number; file: string; bytes: number }
}

async function main() {
  const db = await benchDatabases()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-download-'))
  const port = await freePort()
  const { child, base } = await startServer(
    {
      DATABASE_URL: db.stewardUrl,
      BACKUP_DIR: dir,
      BACKUP_DATABASES: db.benchName,
      SCHEDULER_ENABLED: 'false',
    },
    port,
  )
  const pid = child.pid as number
  try {
    const backup = await backUp(base)
    const file = path.join(dir, backup.file)
    const url = `${base}/backups/${backup.id}/download`
    log(`file: ${mb(backup.bytes)} MiB`)
    // Idle: the server after the backup, answering small requests, before any download.
    await fetch(`${base}/backups`).then((r) => r.text())
    await fetch(`${url}`, { method: 'HEAD' })
    await new Promise((r) => setTimeout(r, 1000))
    const idle = await rss(pid)
    // Warm the page cache for both readers; this first download counts for the peak too.
    await timeRedirected('cat', [file], '/dev/null')
    let peak = (await peakRssDuring(pid, () => timeRedirected('curl', ['-sf', url], '/dev/null'))).peak

    const cat: number[] = []
    const download: number[] = []
    const coldCat: number[] = []
    const coldDownload: number[] = []
    const measureDownload = async () => {
      const measured = await peakRssDuring(pid, () => timeRedirected('curl', ['-sf', url], '/dev/null'))
      peak = Math.max(peak, measured.peak)
      return measured.value
    }
    for (let round = 0; round < ROUNDS; round++) {
      cat.push(await timeRedirected('cat', [file], '/dev/null'))
      download.push(await measureDownload())
      // The same from the disk rather than the page cache, where the machine lets us drop it.
      if (await dropCaches()) coldCat.push(await timeRedirected('cat', [file], '/dev/null'))
      if (await dropCaches()) coldDownload.push(await measureDownload())
      log(
        `round ${round + 1}: cat ${Math.round(cat.at(-1) ?? 0)} ms, download ${Math.round(download.at(-1) ?? 0)} ms`,
      )
    }
    const throughput = (ms: number) => Math.round((backup.bytes / 2 ** 20 / (ms / 1000)) * 10) / 10
    const ratio = median(cat) / median(download)
    const coldRatio = coldCat.length > 0 ? median(coldCat) / median(coldDownload) : null
    const growth = peak - idle
    const result = {
      benchmark: 'download',
      ...machine(),
      postgres: db.serverVersion,
      fileMiB: mb(backup.bytes),
      rounds: ROUNDS,
      warm: {
        catMs: cat.map(Math.round),
        downloadMs: download.map(Math.round),
        catMiBps: throughput(median(cat)),
        downloadMiBps: throughput(median(download)),
        ratio: Math.round(ratio * 1000) / 1000,
      },
      cold:
        coldRatio === null
          ? 'not measured: cannot drop the page cache here (needs root on Linux)'
          : {
              catMs: coldCat.map(Math.round),
              downloadMs: coldDownload.map(Math.round),
              catMiBps: throughput(median(coldCat)),
              downloadMiBps: throughput(median(coldDownload)),
              ratio: Math.round(coldRatio * 1000) / 1000,
            },
      ratioGoal: '≥ 0.8',
      ratioMetWarm: ratio >= 0.8,
      ratioMetCold: coldRatio === null ? null : coldRatio >= 0.8,
      serverIdleRssMiB: mb(idle),
      serverPeakRssMiB: mb(peak),
      rssGrowthMiB: mb(growth),
      rssGoal: '≤ 50 MiB',
      rssMet: growth <= 50 * 2 ** 20,
    }
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    await fs.rm(dir, { recursive: true, force: true })
    await db.stop()
  }
}

await main()
