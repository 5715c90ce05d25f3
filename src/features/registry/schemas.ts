// Registry snapshots as the API shows them. The large parts (architecture, quality, dependencies,
// trends, diff) are documented by their main fields and otherwise left open: they are analysis
// output, stored and returned as the job wrote them.
import { Type } from 'typebox'
import { Json, JsonObject, Nullable, Timestamp } from '../../lib/schemas.js'

const fields = {
  id: Type.Integer(),
  runId: Nullable(Type.Integer({ description: 'The run that made it (null once that run is pruned).' })),
  sourceDir: Type.String({ description: 'The analysed directory (REGISTRY_SOURCE_DIR at the time).' }),
  createdAt: Timestamp,
  summary: Type.Object(
    {
      files: Type.Integer({
        description: 'Text files analysed (ignored, vendored and binary files excluded).',
      }),
      lines: Type.Integer({ description: 'Non-blank lines in them.' }),
      modules: Type.Integer(),
      edges: Type.Integer(),
      cycles: Type.Integer(),
      dependencies: Type.Integer(),
      diff: Nullable(JsonObject),
    },
    { additionalProperties: true },
  ),
}

export const RegistrySnapshotSummary = Type.Object(fields, { $id: 'RegistrySnapshotSummary' })

export const RegistrySnapshot = Type.Object(
  {
    ...fields,
    architecture: Type.Object(
      {
        modules: Type.Array(Type.Object({ name: Type.String(), files: Type.Integer() })),
        edges: Type.Array(Type.Object({ from: Type.String(), to: Type.String(), count: Type.Integer() })),
        cycles: Type.Array(Type.Array(Type.String()), {
          description: 'Groups of modules that import each other (strongly connected components).',
        }),
      },
      { additionalProperties: true, description: 'Modules are the top-level folders and files.' },
    ),
    quality: JsonObject,
    dependencies: Type.Array(JsonObject, { description: 'manifest, ecosystem, name, version, kind' }),
    trends: JsonObject,
    diff: Nullable({ ...Json, description: 'Changes since the previous snapshot of this directory.' }),
  },
  { $id: 'RegistrySnapshot' },
)

export const RegistrySnapshotRef = Type.Ref('RegistrySnapshot')
export const RegistrySnapshotSummaryRef = Type.Ref('RegistrySnapshotSummary')
