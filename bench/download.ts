// Download: GET /backups/{id}/download of the backup benchmark's dump against `cat file > /dev/null`
// (goal: throughput ratio ≥ 0.8), from the page cache and, where it can be dropped (root on Linux,
// full runs only), from disk; plus a bare node:http server streaming the same file, the ceiling any
// Node HTTP server reaches here; and the server's RSS growth while streaming (goal: ≤ 50 MB over
// idle). The server is a real src/server.ts process, so its memory is its own; the client is curl.

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {
  api,
  type Bench,
  createStewardDatabase,
  log,
  mb,
  median,
  ms,
  QUICK,
  type Result,
  round,
  rss,
  type Server,
  sleep,
  startServer,
  TOKEN,
  table,
  timeRedirected,
} from './harness.js'
import { pgbenchDatabase, ROUNDS } from './pgbench.js'

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
  if (QUICK) return false
  try {
    await timeRedirected('sync', [], '/dev/null')
    await fs.writeFile('/proc/sys/vm/drop_caches', '1')
    return true
  } catch {
    return false
  }
}

async function backUp(base: string) {
  let run = await api<{ id: number; state: string; error: unknown; result: { backups: { id: number }[] } }>(
    base,
    '/jobs/database-backup/runs',
    { method: 'POST', body: { args: { type: 'manual' } }, expect: 202 },
  )
  while (['queued', 'running'].includes(run.state)) {
    await sleep(100)
    run = await api(base, `/runs/${run.id}`)
  }
  if (run.state !== 'succeeded') throw new Error(`backup failed: ${JSON.stringify(run.error)}`)
  return await api<{ id: number; file: string; bytes: number }>(base, `/backups/${run.result.backups[0]?.id}`)
}

export async function download(bench: Bench): Promise<Result> {
  const source = await pgbenchDatabase(bench)
  const db = await createStewardDatabase(bench, `steward_bench_download_${process.pid}`)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-bench-download-'))
  const server = await startServer('src/server.ts', {
    DATABASE_URL: db.url,
    BACKUP_DIR: dir,
    BACKUP_DATABASES: source.name,
    SCHEDULER_ENABLED: 'false',
  })
  const times = { cat: [] as number[], download: [] as number[], bare: [] as number[] }
  const cold = { cat: [] as number[], download: [] as number[] }
  let idle = 0
  let peak = 0
  let bytes = 0
  let bare: Server | undefined
  try {
    const backup = await backUp(server.base)
    bytes = backup.bytes
    const file = path.join(dir, backup.file)
    const url = `${server.base}/backups/${backup.id}/download`
    const curl = (target: string) =>
      timeRedirected('curl', ['-sf', '-H', `Authorization: Bearer ${TOKEN}`, target], '/dev/null')
    bare = await startServer('bench/bare-server.ts', { BENCH_FILE: file })
    const bareUrl = `${bare.base}/`
    log(`download: file of ${mb(bytes)} MiB`)
    // Idle: the server after the backup, answering small requests, before any download.
    await api(server.base, '/backups')
    await sleep(1000)
    idle = await rss(server.pid)
    // Warm the page cache for every reader; this first download counts for the peak too.
    await timeRedirected('cat', [file], '/dev/null')
    await curl(bareUrl)
    peak = (await peakRssDuring(server.pid, () => curl(url))).peak
    const measured = async () => {
      const m = await peakRssDuring(server.pid, () => curl(url))
      peak = Math.max(peak, m.peak)
      return m.value
    }
    for (let r = 0; r < ROUNDS; r++) {
      times.cat.push(await timeRedirected('cat', [file], '/dev/null'))
      times.download.push(await measured())
      times.bare.push(await curl(bareUrl))
      if (await dropCaches()) cold.cat.push(await timeRedirected('cat', [file], '/dev/null'))
      if (await dropCaches()) cold.download.push(await measured())
      log(
        `download round ${r + 1}: cat ${ms(times.cat.at(-1) ?? 0)}, download ${ms(times.download.at(-1) ?? 0)}`,
      )
    }
  } finally {
    await bare?.stop()
    await server.stop()
    await fs.rm(dir, { recursive: true, force: true })
    await db.drop()
  }
  const mibps = (v: number[]) => round(bytes / 2 ** 20 / (median(v) / 1000))
  const ratio = median(times.cat) / median(times.download)
  const bareRatio = median(times.cat) / median(times.bare)
  const coldRatio = cold.cat.length > 0 ? median(cold.cat) / median(cold.download) : null
  const growth = peak - idle
  const ratioMet = ratio >= 0.8 && (coldRatio === null || coldRatio >= 0.8)
  const rssMet = growth <= 50 * 2 ** 20
  const row = (label: string, v: number[]) => [label, ms(median(v)), `${mibps(v)} MiB/s`]
  return {
    name: 'download',
    measured: `×${round(ratio, 2)} of cat warm${coldRatio === null ? '' : `, ×${round(coldRatio, 2)} cold`}; RSS +${mb(growth)} MiB`,
    goal: 'throughput ratio ≥ 0.8; RSS growth ≤ 50 MB',
    verdict: ratioMet && rssMet ? 'met' : 'missed',
    section: `The backup job's dump of the pgbench database (${mb(bytes)} MiB), served by a real \`src/server.ts\`
process; the client is \`curl -o /dev/null\`. "Warm": the file is in the page cache; "cold": the cache
is dropped (\`/proc/sys/vm/drop_caches\`, root only${cold.cat.length === 0 ? '; not possible in this run' : ''}) before each read, so both read from the disk.
"bare node:http" is \`bench/bare-server.ts\`, a process whose \`http.createServer\` pipes
\`fs.createReadStream\` (1 MiB reads, as Steward) into the response: what any Node HTTP server reaches here.
Medians of ${ROUNDS} rounds.

${table(
  ['', 'median', 'throughput'],
  [
    row('`cat`, warm', times.cat),
    row('download, warm', times.download),
    row('bare node:http, warm', times.bare),
    ...(cold.cat.length > 0 ? [row('`cat`, cold', cold.cat), row('download, cold', cold.download)] : []),
  ],
)}

**Ratio ${round(ratio, 2)} warm${coldRatio === null ? '' : `, ${round(coldRatio, 2)} cold`}: goal ≥ 0.8 ${ratioMet ? 'met' : 'missed'}.** The bare
node:http server reaches ×${round(bareRatio, 2)} of \`cat\` warm (Steward's download takes ×${round(median(times.download) / median(times.bare), 2)} the bare server's time), so
${ratioMet ? 'there is headroom' : 'most of the gap is Node HTTP itself, not Steward'}: \`cat\` into \`/dev/null\` is one copy out of the page
cache, a download is that copy plus a copy into a TCP socket, HTTP framing and a copy out of it in curl;
Node cannot \`sendfile(2)\` an HTTP body. From disk the ratio approaches 1 once the disk, not the HTTP path,
is the slower of the two.

Server memory: idle RSS ${mb(idle)} MiB (after the backup and a few small requests), peak ${mb(peak)} MiB
over ${1 + times.download.length + cold.download.length} downloads of the file (sampled every 10 ms from \`/proc/<pid>/status\`):
**growth ${mb(growth)} MiB, goal ≤ 50 MiB ${rssMet ? 'met' : 'missed'}.** The file is streamed with 1 MiB reads under the
socket's backpressure, never buffered whole.`,
  }
}
