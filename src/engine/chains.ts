// Chains: a run may carry the steps that follow it (`then: [{job, args}]`). When it succeeds (after
// its retries) the first step is queued as a run of its own (trigger 'chain', parentId the run that
// led to it) carrying the rest; when it fails for good or is cancelled, the steps not run are
// recorded as skipped (chain_stopped), so the history says what did not happen and why.
import { InvalidInput } from '../lib/errors.js'
import { validateArgs } from './args.js'
import type { AnyJob } from './job.js'

export interface ChainStep {
  job: string
  args: Record<string, unknown>
}

export const MAX_CHAIN_STEPS = 10

/**
 * Checks a chain when it is saved (on a schedule) or triggered: every job exists and every step's
 * args fit that job (defaults filled in). Empty or absent: no chain (null).
 */
export function validateChain(
  jobs: Map<string, AnyJob>,
  steps: ReadonlyArray<{ job: string; args?: Record<string, unknown> }> | null | undefined,
): ChainStep[] | null {
  if (!steps || steps.length === 0) return null
  if (steps.length > MAX_CHAIN_STEPS) {
    throw new InvalidInput(`then has ${steps.length} steps; at most ${MAX_CHAIN_STEPS} are allowed`)
  }
  return steps.map((step, i) => {
    const job = jobs.get(step.job)
    if (!job) {
      throw new InvalidInput(
        `then[${i}].job "${step.job}" does not exist; known jobs: ${[...jobs.keys()].join(', ')}`,
      )
    }
    return { job: job.name, args: validateArgs(job.args, step.args ?? {}, `then[${i}].args`) }
  })
}
