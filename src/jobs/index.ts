// The job registry. A job is listed here only once it does its real work; schedules of jobs that
// are not listed are never seeded or fired.
import { cacheClear } from './cache-clear.js'
import type { AnyJob } from './define.js'
import { pruneRuns } from './prune-runs.js'

export const jobs: AnyJob[] = [cacheClear, pruneRuns]

export type { AnyJob, JobContext, JobDefinition, JsonValue } from './define.js'
export { defineJob } from './define.js'
