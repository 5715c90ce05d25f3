// Template files: finds JSON, YAML and Markdown files under TEMPLATES_DIR and parses each into what
// the templates table stores. A file that cannot be parsed becomes a warning, never an exception,
// so one bad file cannot stop the others from syncing.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import YAML from 'yaml'

export type TemplateFormat = 'json' | 'yaml' | 'markdown'

export interface ParsedTemplate {
  path: string
  name: string
  format: TemplateFormat
  metadata: Record<string, unknown>
  body: string
  sha256: string
}

export interface FileWarning {
  path: string
  reason: string
}

const FORMATS: Record<string, TemplateFormat> = {
  '.json': 'json',
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.md': 'markdown',
  '.markdown': 'markdown',
}

/** Larger files are not templates; they are refused by their size, before any byte is read. */
export const MAX_TEMPLATE_BYTES = 1024 * 1024

/** In JSON and YAML templates the first of these string fields is the body; the rest is metadata. */
const BODY_FIELDS = ['body', 'content', 'template']

export class TemplatesDirMissing extends Error {
  readonly code = 'templates_dir_missing'
}

/** Relative paths (with /) of template files, sorted. Hidden entries and symlinks are skipped. */
export async function findTemplateFiles(root: string, signal: AbortSignal): Promise<string[]> {
  const stat = await fs.stat(root).catch(() => null)
  if (!stat?.isDirectory()) {
    throw new TemplatesDirMissing(`TEMPLATES_DIR ${root} does not exist or is not a directory`)
  }
  const found: string[] = []
  const walk = async (dir: string): Promise<void> => {
    signal.throwIfAborted()
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile() && FORMATS[path.extname(entry.name).toLowerCase()])
        found.push(path.relative(root, full).split(path.sep).join('/'))
    }
  }
  await walk(root)
  return found.sort()
}

/** Reads and parses one file; a string is the reason it could not be used. */
export async function readTemplate(root: string, relative: string): Promise<ParsedTemplate | string> {
  const bytes = await readBounded(path.join(root, relative), MAX_TEMPLATE_BYTES)
  if (typeof bytes === 'string') return bytes
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return 'not valid UTF-8'
  }
  const format = FORMATS[path.extname(relative).toLowerCase()] as TemplateFormat
  const parsed = format === 'markdown' ? parseMarkdown(text) : parseDocument(text, format)
  if (typeof parsed === 'string') return parsed
  // PostgreSQL text and jsonb cannot hold NUL (escaped in JSON too); a warning, not a failed sync.
  if (parsed.body.includes('\u0000') || JSON.stringify(parsed.metadata).includes('\\u0000'))
    return 'contains NUL characters'
  const stem = path.posix.basename(relative, path.posix.extname(relative))
  const named = parsed.metadata.name ?? parsed.metadata.title
  return {
    path: relative,
    name: typeof named === 'string' && named.trim() !== '' ? named.trim() : stem,
    format,
    metadata: parsed.metadata,
    body: parsed.body,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  }
}

/**
 * The file's bytes, or why they were not read. The size is checked first (on the open handle, so
 * it is the size of the file then read): a huge file costs a stat, not its size in memory. A file
 * still being written is read no further than one byte past the size it had, and skipped this time.
 */
async function readBounded(file: string, max: number): Promise<Buffer | string> {
  const handle = await fs.open(file, 'r')
  try {
    const { size } = await handle.stat()
    if (size > max) return `larger than ${max} bytes`
    const buffer = Buffer.alloc(size + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) break
      length += bytesRead
    }
    return length > size ? 'grew while it was read (still being written?)' : buffer.subarray(0, length)
  } finally {
    await handle.close()
  }
}

interface Parts {
  metadata: Record<string, unknown>
  body: string
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parseDocument(text: string, format: 'json' | 'yaml'): Parts | string {
  let value: unknown
  try {
    value = format === 'json' ? JSON.parse(text) : YAML.parse(text, { maxAliasCount: 100 })
  } catch (err) {
    return `invalid ${format.toUpperCase()}: ${firstLine(err)}`
  }
  if (!isObject(value)) return `a ${format.toUpperCase()} template must be an object at the top level`
  const bodyField = BODY_FIELDS.find((field) => typeof value[field] === 'string')
  if (!bodyField) return { metadata: toJson(value), body: text }
  const { [bodyField]: body, ...metadata } = value
  return { metadata: toJson(metadata), body: body as string }
}

const FRONT_MATTER = /^---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/

function parseMarkdown(text: string): Parts | string {
  const match = FRONT_MATTER.exec(text)
  if (!match) return { metadata: {}, body: text }
  let value: unknown
  try {
    value = YAML.parse(match[1] ?? '', { maxAliasCount: 100 }) ?? {}
  } catch (err) {
    return `invalid front matter: ${firstLine(err)}`
  }
  if (!isObject(value)) return 'front matter must be a YAML mapping'
  // The blank line people (and formatters) put after the front matter is not part of the body.
  return { metadata: toJson(value), body: text.slice(match[0].length).replace(/^(?:[ \t]*\r?\n)+/, '') }
}

/** YAML dates and the like become their JSON form, as jsonb will store them. */
function toJson(value: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'parse error'
}
