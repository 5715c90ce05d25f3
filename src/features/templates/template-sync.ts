// template-sync: the seed's `mix templates.sync --force`. Makes the templates table match the files
// under TEMPLATES_DIR in one transaction; files that cannot be parsed are reported, not fatal.
import { Type } from 'typebox'
import { defineJob } from '../../engine/job.js'
import { syncTemplates } from './sync.js'

export const templateSync = defineJob({
  name: 'template-sync',
  description:
    'Syncs the templates table with the JSON, YAML and Markdown files under TEMPLATES_DIR: adds new, ' +
    'updates changed (by sha256), removes deleted; {"force": true} rewrites every row.',
  // The directory is configuration, not an argument: a trigger must not point the job at any path.
  args: Type.Object(
    {
      force: Type.Optional(
        Type.Boolean({ description: 'Rewrite every row (and its updated_at), changed or not.' }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 10 * 60_000,
  maxAttempts: 1,
  schedules: [{ name: 'template-sync', cron: '0 2 * * *', args: { force: true } }],
  async run({ args, sql, signal, config, log }) {
    const result = await syncTemplates(sql, config.templatesDir, { force: args.force === true, signal })
    const { warnings, ...counts } = result
    log.info({ ...counts, warnings: warnings.length }, 'templates synced')
    return result
  },
})
