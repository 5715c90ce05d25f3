// The job registry. A job is listed here only once it does its real work; schedules of jobs that
// are not listed are never seeded or fired.
import { cacheClear } from '../features/maintenance/cache-clear.js'
import { databaseBackup } from '../features/backups/database-backup.js'
import type { AnyJob } from '../engine/job.js'
import { pruneRuns } from '../features/maintenance/prune-runs.js'
import { registrySync } from '../features/registry/registry-sync.js'
import { templateEmbed } from '../features/templates/template-embed.js'
import { templateSync } from '../features/templates/template-sync.js'

export const jobs: AnyJob[] = [
  cacheClear,
  pruneRuns,
  databaseBackup,
  registrySync,
  templateSync,
  templateEmbed,
]

export type { AnyJob, JobContext, JobDefinition, JsonValue } from '../engine/job.js'
export { defineJob } from '../engine/job.js'
