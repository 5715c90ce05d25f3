// template-sync: the seed's `mix templates.sync --force`. Makes the templates table match the files
// under TEMPLATES_DIR in one transaction; files that cannot be parsed are reported, not fatal. A
// sync that would delete all templates or more than half of them fails (mass_delete_refused) unless
// its args allow it: an unmounted volume must not empty the table.
import { Type } from 'typebox'
import { defineJob } from '../../engine/job.js'
import { syncTemplates } from './sync.js'

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
  async run({ args, sql, signal, config, log }) {
    const result = await syncTemplates(sql, config.templatesDir, {
      force: args.force === true,
      allowMassDelete: args.allowMassDelete === true,
      signal,
    })
    const { warnings, ...counts } = result
    log.info({ ...counts, warnings: warnings.length }, 'templates synced')
    return result
  },
})
