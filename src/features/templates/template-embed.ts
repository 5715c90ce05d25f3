// template-embed: the seed's `mix templates.embed --missing`. Computes a vector for every template
// whose embedding is missing or stale (or for all with {"missing": false}), batch by batch, each
// batch committed as it completes so an interrupted run keeps its progress.
import { Type } from 'typebox'
import { defineJob } from '../../engine/job.js'
import { createEmbedder } from './embeddings/create.js'
import { type Embedder, EmbeddingError, embeddingText } from './embeddings/embedder.js'
import { createTemplatesService, type ToEmbed } from './store.js'

/** Batch errors kept in the result; the rest are only counted. */
const MAX_ERRORS = 10

export const templateEmbed = defineJob({
  name: 'template-embed',
  description:
    'Embeds templates whose vector is missing or stale (content changed, or another model) with the ' +
    'local lexical embedder or the EMBEDDINGS_URL server; {"missing": false} re-embeds all.',
  args: Type.Object(
    {
      missing: Type.Optional(
        Type.Boolean({
          default: true,
          description: 'Only templates without a current embedding (false: every template).',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 60 * 60_000,
  maxAttempts: 2,
  // Sundays, after the nightly template-sync.
  schedules: [{ name: 'template-embed', cron: '0 5 * * 0', args: { missing: true } }],
  async run({ args, sql, signal, config, log }) {
    const embedder = createEmbedder(config)
    const templates = createTemplatesService(sql)
    const { items, total } = await templates.toEmbed(embedder.model, args.missing === false)
    const result = {
      embedded: 0,
      skipped: total - items.length,
      failed: 0,
      model: embedder.model,
      provider: embedder.provider,
      dimensions: null as number | null,
      errors: [] as string[],
    }
    for (let i = 0; i < items.length; i += embedder.batchSize) {
      signal.throwIfAborted()
      const batch = items.slice(i, i + embedder.batchSize)
      const vectors = await embedBatch(embedder, batch, result.dimensions, signal).catch((err: Error) => err)
      if (vectors instanceof Error) {
        log.warn({ err: vectors, templates: batch.length }, 'embedding batch failed')
        result.failed += batch.length
        if (result.errors.length < MAX_ERRORS) result.errors.push(vectors.message)
        continue
      }
      result.dimensions = vectors[0]?.length ?? result.dimensions
      await templates.storeEmbeddings(
        embedder.model,
        batch.map((template, k) => ({ template, vector: vectors[k] as number[] })),
      )
      result.embedded += batch.length
    }
    // Nothing usable came back (server down, wrong model): that is a failed run, not a quiet success.
    if (result.failed > 0 && result.embedded === 0) {
      throw Object.assign(new Error(`no template could be embedded: ${result.errors[0]}`), {
        code: 'embedding_failed',
      })
    }
    log.info({ ...result, errors: result.errors.length }, 'templates embedded')
    return result
  },
})

async function embedBatch(
  embedder: Embedder,
  batch: ToEmbed[],
  dimensions: number | null,
  signal: AbortSignal,
): Promise<number[][]> {
  try {
    const vectors = await embedder.embed(
      batch.map((template) => embeddingText(template)),
      signal,
    )
    const length = dimensions ?? vectors[0]?.length
    if (vectors.some((v) => v.length !== length))
      throw new EmbeddingError(`the server changed dimensions mid-run (expected ${length})`)
    return vectors
  } catch (err) {
    // A cancel or timeout ends the run; only the provider's own failures are per-batch.
    signal.throwIfAborted()
    throw err
  }
}
