// The `local` embedding provider: a deterministic lexical embedding, not a neural model. Word
// unigrams and bigrams and character trigrams are hashed into 384 signed buckets (feature hashing)
// and the vector is scaled to unit length, so texts sharing words and word parts score high.
import type { Embedder } from './embedder.js'
import { normalize } from './embedder.js'

export const LOCAL_MODEL = 'steward-lexical-v1'
export const LOCAL_DIMENSIONS = 384

// Whole words carry most meaning; bigrams add phrase order, trigrams catch inflections and typos.
const WEIGHTS = { word: 1, bigram: 0.7, trigram: 0.25 }

export function createLocalEmbedder(): Embedder {
  return {
    provider: 'local',
    model: LOCAL_MODEL,
    batchSize: 64,
    async embed(texts, signal) {
      signal.throwIfAborted()
      return texts.map(lexicalEmbedding)
    },
  }
}

export function lexicalEmbedding(text: string): number[] {
  const vector = new Array<number>(LOCAL_DIMENSIONS).fill(0)
  const add = (feature: string, weight: number) => {
    const hash = fnv1a(feature)
    const i = hash % LOCAL_DIMENSIONS
    // The sign bit spreads collisions around zero instead of piling them up.
    vector[i] = (vector[i] ?? 0) + (hash & 0x80000000 ? -weight : weight)
  }
  const words =
    text
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? []
  words.forEach((word, i) => {
    add(`w:${word}`, WEIGHTS.word)
    const next = words[i + 1]
    if (next !== undefined) add(`b:${word} ${next}`, WEIGHTS.bigram)
    const padded = `^${word}$`
    for (let j = 0; j + 3 <= padded.length; j++) add(`c:${padded.slice(j, j + 3)}`, WEIGHTS.trigram)
  })
  return normalize(vector)
}

/** 32-bit FNV-1a over UTF-16 code units: fast, stable across runs and platforms. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}
