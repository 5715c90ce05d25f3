// template-embed: the seed's `mix templates.embed --missing`. Computes a vector for every template
// whose embedding is missing or stale (or for all with {"missing": false}), batch by batch, each
// batch committed as it completes so an interrupted run keeps its progress.
import { Type } from 'typebox'
import { defineJob, type RunLogger } from '../../engine/job.js'
import { createEmbedder } from './embeddings/create.js'
import { type Embedder, EmbeddingError, type EmbedRetry, embeddingText } from './embeddings/embedder.js'
import { createTemplatesService, type TemplatesService, type ToEmbed } from './store.js'

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
  async run({ args, sql, signal, config, log, progress }) {
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
    const { model, provider, batchSize } = embedder
    const batches = Math.ceil(items.length / batchSize)
    log.info('embedding templates', {
      templates: items.length,
      skipped: result.skipped,
      model,
      provider,
      batches,
    })
    progress({ done: 0, total: items.length, unit: 'templates' })
    for (let i = 0; i < items.length; i += batchSize) {
      signal.throwIfAborted()
      const batch = { items: items.slice(i, i + batchSize), number: i / batchSize + 1, of: batches }
      await embedOne({ embedder, templates, log, signal }, batch, result)
      progress({ done: result.embedded + result.failed, total: items.length, unit: 'templates' })
    }
    // Nothing usable came back (server down, wrong model): that is a failed run, not a quiet success.
    if (result.failed > 0 && result.embedded === 0) {
      throw Object.assign(new Error(`no template could be embedded: ${result.errors[0]}`), {
        code: 'embedding_failed',
      })
    }
    const { embedded, skipped, failed, dimensions } = result
    log.info('templates embedded', { embedded, skipped, failed, dimensions })
    return result
  },
})

type EmbedResult = { embedded: number; failed: number; dimensions: number | null; errors: string[] }

/** Embeds and stores one batch, counting it in `result`; a batch the provider fails is counted, not thrown. */
async function embedOne(
  deps: { embedder: Embedder; templates: TemplatesService; log: RunLogger; signal: AbortSignal },
  batch: { items: ToEmbed[]; number: number; of: number },
  result: EmbedResult,
): Promise<void> {
  const { embedder, log } = deps
  const onRetry = (retry: EmbedRetry) =>
    log.warn('embeddings server failed; retrying', { batch: batch.number, ...retry })
  const started = Date.now()
  const vectors = await embedBatch(embedder, batch.items, result.dimensions, deps.signal, onRetry).catch(
    (err: Error) => err,
  )
  if (vectors instanceof Error) {
    log.error('embedding batch failed', { batch: batch.number, templates: batch.items.length, err: vectors })
    result.failed += batch.items.length
    if (result.errors.length < MAX_ERRORS) result.errors.push(vectors.message)
    return
  }
  result.dimensions = vectors[0]?.length ?? result.dimensions
  await deps.templates.storeEmbeddings(
    embedder.model,
    batch.items.map((template, k) => ({ template, vector: vectors[k] as number[] })),
  )
  result.embedded += batch.items.length
  const seconds = (Date.now() - started) / 1000
  log.info('batch embedded', { batch: batch.number, of: batch.of, templates: batch.items.length, seconds })
}

async function embedBatch(
  embedder: Embedder,
  batch: ToEmbed[],
  dimensions: number | null,
  signal: AbortSignal,
  onRetry: (retry: EmbedRetry) => void,
): Promise<number[][]> {
  try {
    const vectors = await embedder.embed(
      batch.map((template) => embeddingText(template)),
      signal,
      { onRetry },
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
