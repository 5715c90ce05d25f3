// registry-sync: the seed's `mix registry.sync`. Analyses REGISTRY_SOURCE_DIR (architecture,
// quality, dependencies) and job_runs (performance trends) and stores one snapshot per run in
// registry_snapshots, with what changed since the previous snapshot of the same directory.
import fs from 'node:fs/promises'
import { Type } from 'typebox'
import { defineJob } from '../../engine/job.js'
import { analyzeTree } from './analyze.js'
import { diffSnapshots, diffSummary } from './diff.js'
import { createRegistryService } from './store.js'
import { jobTrends } from './trends.js'

export const registrySync = defineJob({
  name: 'registry-sync',
  description:
    'Snapshots REGISTRY_SOURCE_DIR (modules, import edges and cycles, lines per language, dependencies) ' +
    'and per-job run trends into registry_snapshots, with the diff from the previous snapshot.',
  // The directory is configuration, not an argument: a trigger must not point the job at any path.
  args: Type.Object(
    {
      trends: Type.Optional(
        Type.Boolean({ description: 'Compute per-job run trends from job_runs (default true).' }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 30 * 60_000,
  maxAttempts: 2,
  schedules: [{ name: 'registry-sync', cron: '0 4 * * *' }],
  async run({ args, sql, signal, config, log, runId, progress }) {
    const sourceDir = config.registrySourceDir
    const stat = await fs.stat(sourceDir).catch(() => null)
    if (!stat?.isDirectory()) throw new Error(`REGISTRY_SOURCE_DIR ${sourceDir} is not a directory`)
    const started = Date.now()
    log.info('analysing the source tree', { sourceDir })
    const analysis = await analyzeTree(sourceDir, signal, (done) => progress({ done, unit: 'files' }))
    const walked = analysis.files + analysis.skipped.binary
    progress({ done: walked, total: walked, unit: 'files' })
    const { files, lines, skipped } = analysis
    const seconds = (Date.now() - started) / 1000
    log.info('source tree analysed', {
      files,
      lines,
      binary: skipped.binary,
      tooLarge: skipped.tooLarge,
      seconds,
    })
    const trends = args.trends === false ? [] : await jobTrends(sql)
    if (args.trends === false) log.info('run trends skipped')
    else log.info('run trends computed', { jobs: trends.length })
    signal.throwIfAborted()

    const registry = createRegistryService(sql)
    const previous = await registry.previous(sourceDir)
    const diff = previous ? diffSnapshots(previous.id, previous, analysis) : null
    const summary = {
      files: analysis.files,
      lines: analysis.lines,
      skipped: analysis.skipped,
      modules: analysis.architecture.modules.length,
      edges: analysis.architecture.edges.length,
      cycles: analysis.architecture.cycles.length,
      dependencies: analysis.dependencies.length,
      todoCount: analysis.quality.todoCount,
      testRatio: analysis.quality.testRatio,
      analysisMs: Date.now() - started,
      diff: diffSummary(diff),
    }
    if (summary.diff) log.info('compared with the previous snapshot', { ...summary.diff })
    else log.info('first snapshot of this directory: nothing to compare with')
    const snapshotId = await registry.insert({
      runId: Number(runId),
      sourceDir,
      summary,
      architecture: analysis.architecture,
      quality: analysis.quality,
      dependencies: analysis.dependencies,
      trends: { jobs: trends },
      diff,
      inventory: analysis.inventory,
    })
    const { modules, edges, cycles, dependencies } = summary
    log.info('registry snapshot stored', { snapshotId, files, modules, edges, cycles, dependencies })
    return { snapshotId, sourceDir, ...summary }
  },
})
