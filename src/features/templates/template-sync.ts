// template-sync: the seed's `mix templates.sync --force`. Makes the templates table match the files
// under TEMPLATES_DIR in one transaction; files that cannot be parsed are reported, not fatal. A
// sync that would delete all templates or more than half of them fails (mass_delete_refused) unless
// its args allow it: an unmounted volume must not empty the table.
import { Type } from 'typebox'
import { defineJob, type RunLogger } from '../../engine/job.js'
import { type SyncOutcome, type SyncResult, syncTemplates } from './sync.js'

export const templateSync = defineJob({
  name: 'template-sync',
  description:
    'Syncs the templates table with the JSON, YAML and Markdown files under TEMPLATES_DIR: adds new, ' +
    'updates changed (by sha256), removes deleted; {"force": true} rewrites every row. Refuses to ' +
    'delete all templates or more than half of them unless {"allowMassDelete": true}.',
  // The directory is configuration, not an argument: a trigger must not point the job at any path.
  args: Type.Object(
    {
      force: Type.Optional(
        Type.Boolean({ description: 'Rewrite every row (and its updated_at), changed or not.' }),
      ),
      // Not implied by force: the default schedule passes force, and must still be stopped.
      allowMassDelete: Type.Optional(
        Type.Boolean({
          description:
            'Allow a sync that deletes every template or more than half of them (and their ' +
            'embeddings); without it such a sync fails with mass_delete_refused and changes nothing.',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 10 * 60_000,
  maxAttempts: 1,
  // Embeddings follow the templates they are computed from.
  schedules: [
    {
      name: 'template-sync',
      cron: '0 2 * * *',
      args: { force: true },
      then: [{ job: 'template-embed', args: { missing: true } }],
    },
  ],
  // Letting a sync empty the table is an admin's call.
  triggerAction: (args) => (args.allowMassDelete === true ? 'templates.mass-delete' : 'templates.sync'),
  async run({ args, sql, signal, config, log, progress }) {
    log.info('reading template files', { dir: config.templatesDir, force: args.force === true })
    const { paths, ...result } = await syncTemplates(sql, config.templatesDir, {
      force: args.force === true,
      allowMassDelete: args.allowMassDelete === true,
      signal,
      onRead: (done, total) => progress({ done, total, unit: 'files' }),
    })
    logChanges(log, paths, result)
    const { warnings, ...counts } = result
    const rewritten = counts.updated - paths.changed.length
    log.info('templates synced', { ...counts, rewritten, warnings: warnings.length })
    return result
  },
})

/** Files named in the run log per kind of change; the rest are counted. */
const NAMED = 200

/** Each file added, changed or removed (the first NAMED of each), and each file that was skipped. */
function logChanges(log: RunLogger, paths: SyncOutcome['paths'], result: SyncResult): void {
  type Named = Array<{ path: string; reason?: string }>
  const name = (list: Named, each: string, rest: string, level: 'info' | 'warn' = 'info') => {
    for (const file of list.slice(0, NAMED)) log[level](each, { ...file })
    if (list.length > NAMED) log[level](rest, { more: list.length - NAMED, total: list.length })
  }
  const files = (list: string[]) => list.map((path) => ({ path }))
  name(files(paths.added), 'template added', 'more templates added')
  name(files(paths.changed), 'template updated', 'more templates updated')
  name(files(paths.removed), 'template removed', 'more templates removed')
  name(result.warnings, 'template file skipped', 'more template files skipped', 'warn')
}
