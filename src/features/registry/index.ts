// The code registry: registry-sync analyses the source tree (modules, imports, dependencies,
// quality, trends) into snapshots that the /registry routes serve.
import type { Feature } from '../../engine/feature.js'
import plugin from './plugin.js'
import { registrySync } from './registry-sync.js'
import { RegistrySnapshot, RegistrySnapshotSummary } from './schemas.js'

export const registry: Feature = {
  plugin,
  jobs: [registrySync],
  schemas: [RegistrySnapshotSummary, RegistrySnapshot],
  tag: { name: 'registry', description: 'Code-registry snapshots of the source tree' },
}
