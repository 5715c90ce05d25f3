// `npm run bench`: every benchmark in bench/, one after the other on one PostgreSQL, then a summary
// table on stdout and (full runs only) BENCHMARKS.md rewritten with the results, the machine and
// the date. `--quick` runs each with small sizes and short windows so CI can tell they still work;
// `--only name,name` runs a subset. Benchmarks never fail on a number, only when something breaks.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { backup } from './backup.js'
import { backupOffsite } from './backup-offsite.js'
import { claimOverhead } from './claim-overhead.js'
import { download } from './download.js'
import { fireLateness } from './fire-lateness.js'
import { footprint } from './footprint.js'
import { type Bench, log, machine, QUICK, type Result, ROOT, startBench, table } from './harness.js'
import { pgBoss } from './pg-boss.js'
import { renderReport } from './report.js'
import { runHistory } from './run-history.js'
import { runLogs } from './run-logs.js'
import { scale } from './scale.js'
import { trigger } from './trigger.js'

const BENCHMARKS: [string, (bench: Bench) => Promise<Result>][] = [
  ['fire-lateness', fireLateness],
  ['pg-boss', pgBoss],
  ['claim-overhead', claimOverhead],
  ['run-history', runHistory],
  ['trigger', trigger],
  ['backup', backup],
  ['backup-offsite', backupOffsite],
  ['download', download],
  ['footprint', footprint],
  ['scale', scale],
  ['run-logs', runLogs],
]

async function main(): Promise<number> {
  const onlyArg = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length)
  const only = onlyArg?.split(',')
  const selected = BENCHMARKS.filter(([name]) => !only || only.includes(name))
  const started = Date.now()
  const { bench, stop } = await startBench()
  const loadBefore = machine(bench).load
  const byName = new Map<string, Result>()
  const failures: string[] = []
  const runOne = async ([name, run]: (typeof BENCHMARKS)[number]) => {
    const t = Date.now()
    log(`== ${name}${QUICK ? ' (quick)' : ''}`)
    try {
      byName.set(name, await run(bench))
    } catch (err) {
      failures.push(name)
      log(`${name} is broken: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    }
    log(`== ${name} took ${Math.round((Date.now() - t) / 1000)} s`)
  }
  try {
    if (QUICK) {
      // --quick measures nothing worth keeping, so it runs in two lanes at once to stay under a
      // minute; benchmarks that share state (the pgbench database, the no-op job's start times)
      // are in the same lane.
      const lane = (names: string[]) => selected.filter(([name]) => names.includes(name))
      const runLane = async (benchmarks: typeof BENCHMARKS) => {
        for (const benchmark of benchmarks) await runOne(benchmark)
      }
      await Promise.all([
        runLane(lane(['fire-lateness', 'run-history', 'trigger', 'scale', 'run-logs'])),
        runLane(lane(['pg-boss', 'claim-overhead', 'backup', 'backup-offsite', 'download', 'footprint'])),
      ])
    } else {
      for (const benchmark of selected) await runOne(benchmark)
    }
  } finally {
    await stop()
  }
  const results = selected.flatMap(([name]) => byName.get(name) ?? [])
  const seconds = Math.round((Date.now() - started) / 1000)
  const summary = table(
    ['benchmark', 'measured', 'goal', 'verdict'],
    results.map((r) => [r.name, r.measured, r.goal, r.verdict]),
  )
  const kind = QUICK ? 'quick run (small sizes and windows: a check that they work, not figures)' : 'full run'
  process.stdout.write(`\n${summary}\n\n${kind}: ${seconds} s\n`)
  if (!QUICK && !only && failures.length === 0) {
    const file = path.join(ROOT, 'BENCHMARKS.md')
    await fs.writeFile(
      file,
      renderReport({ machine: { ...machine(bench), loadBefore }, results, summary, seconds }),
    )
    // Formatted as `npm run lint` (biome) expects, so a full run leaves the tree lint-clean.
    spawnSync(path.join(ROOT, 'node_modules', '.bin', 'biome'), ['format', '--write', file], {
      stdio: 'ignore',
    })
    log(`wrote ${file}`)
  }
  // A subset writes nothing; its sections are printed, to be read (or carried into BENCHMARKS.md).
  if (!QUICK && only) {
    for (const r of results)
      process.stdout.write(
        `\n## ${r.name}\n\n**Goal:** ${r.goal}. **Verdict:** ${r.verdict}.\n\n${r.section}\n`,
      )
  }
  if (failures.length > 0) log(`broken: ${failures.join(', ')}`)
  return failures.length > 0 ? 1 : 0
}

process.exitCode = await main()
