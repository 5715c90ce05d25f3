// The job registry. A job is listed here only once it does its real work; schedules of jobs that
// are not listed are never seeded or fired.
import { cacheClear } from './cache-clear.js'
import { databaseBackup } from './database-backup.js'
import type { AnyJob } from './define.js'
import { pruneRuns } from './prune-runs.js'
import { registrySync } from './registry-sync.js'
import { templateEmbed } from './template-embed.js'
import { templateSync } from './template-sync.js'

export const jobs: AnyJob[] = [
  cacheClear,
  pruneRuns,
  databaseBackup,
  registrySync,
  templateSync,
  templateEmbed,
]

export type { AnyJob, JobContext, JobDefinition, JsonValue } from './define.js'
export { defineJob } from './define.js'
