// Templates: template-sync stores the files of TEMPLATES_DIR, template-embed computes their
// embeddings, and the /templates routes list, show and search them.
import type { Feature } from '../../engine/feature.js'
import plugin from './plugin.js'
import { Template, TemplateSummary } from './schemas.js'
import { templateEmbed } from './template-embed.js'
import { templateSync } from './template-sync.js'

export const templates: Feature = {
  plugin,
  jobs: [templateSync, templateEmbed],
  schemas: [TemplateSummary, Template],
  tag: { name: 'templates', description: 'Synced template files; search by embedding similarity' },
}
