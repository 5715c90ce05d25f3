// Housekeeping of the databases Steward looks after: cache-clear empties stale cache rows and
// prune-runs keeps job_runs bounded. Jobs only: no routes of their own (they run through /jobs).
import type { Feature } from '../../engine/feature.js'
import { cacheClear } from './cache-clear.js'
import { pruneRuns } from './prune-runs.js'

export const maintenance: Feature = {
  jobs: [cacheClear, pruneRuns],
  schemas: [],
}
