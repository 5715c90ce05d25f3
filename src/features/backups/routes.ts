// Backups: the files database-backup wrote, newest first; download (streamed, with ranges and
// ETags), restore check and delete. Files are found through their rows only: no path from a request
// ever reaches the file system.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { errors, IdParams, ListQuery, Page } from '../../lib/schemas.js'
import {
  type CopyChoice,
  contentDisposition,
  contentTypeOf,
  etagOf,
  noneMatch,
  parseRange,
  rangeStillValid,
} from './download.js'
import { BackupKind, BackupRef } from './schemas.js'
import { toBackup } from './store.js'

const BackupQuery = ListQuery({
  kind: Type.Optional(BackupKind),
  database: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
})

const SourceQuery = Type.Object(
  {
    source: Type.Optional(
      Type.Enum(['local', 'remote'], { description: 'Which copy to serve; default: local, else off-site.' }),
    ),
  },
  { additionalProperties: false },
)

const CopyQuery = Type.Object(
  { copy: Type.Optional(Type.Enum(['local', 'remote'], { description: 'Delete only this copy.' })) },
  { additionalProperties: false },
)

const DownloadHeaders = Type.Object({
  range: Type.Optional(
    Type.String({ description: 'One range, e.g. bytes=0-1023, bytes=1024- or bytes=-500.' }),
  ),
  'if-none-match': Type.Optional(Type.String({ description: 'The ETag you have: 304 when unchanged.' })),
  'if-range': Type.Optional(
    Type.String({ description: 'Apply Range only while the ETag is still this one.' }),
  ),
})

const File = Type.String({ format: 'binary' })
const FileResponse = (description: string) => ({
  description,
  content: {
    'application/sql': { schema: File },
    'application/gzip': { schema: File },
    'application/octet-stream': { schema: File },
  },
})

// Streams read 1 MiB at a time: far fewer round trips through the event loop than the 64 KiB default.
const READ_CHUNK = 1024 * 1024

const header = (request: FastifyRequest, name: string) => {
  const value = request.headers[name]
  return typeof value === 'string' ? value : undefined
}

async function download(
  app: FastifyInstance,
  id: number,
  source: CopyChoice,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const { backup, reader } = await app.backups.open(id, source)
  const size = reader.size
  try {
    const etag = etagOf(backup)
    reply
      .header('etag', etag)
      .header('cache-control', 'private, no-store')
      .header('accept-ranges', 'bytes')
      .header('x-backup-source', reader.source)
    if (noneMatch(header(request, 'if-none-match'), etag)) {
      await reader.close()
      return reply.code(304).send()
    }
    const range = rangeStillValid(header(request, 'if-range'), etag)
      ? parseRange(header(request, 'range'), size)
      : { kind: 'full' as const }
    if (range.kind === 'unsatisfiable') {
      await reader.close()
      return reply
        .code(416)
        .header('content-range', `bytes */${size}`)
        .send({ statusCode: 416, error: 'Range Not Satisfiable', message: `the file has ${size} bytes` })
    }
    const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, size - 1]
    reply
      .header('content-type', contentTypeOf(backup))
      .header('content-disposition', contentDisposition(backup))
      .header('last-modified', new Date(backup.createdAt).toUTCString())
      .header('content-length', String(end - start + 1))
    if (range.kind === 'partial') reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`)
    if (request.method === 'HEAD' || size === 0) {
      await reader.close()
      return reply.send()
    }
    // The stream owns the copy from here: closed when it ends or the client goes away.
    return reply.send(await reader.stream(start, end, READ_CHUNK))
  } catch (err) {
    await reader.close().catch(() => {})
    throw err
  }
}

const backups: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/backups',
    {
      schema: {
        tags: ['backups'],
        operationId: 'listBackups',
        summary: 'List backups, newest first',
        querystring: BackupQuery,
        response: { 200: Page(BackupRef), ...errors(400) },
      },
    },
    async (request) => {
      const { limit = 50, cursor, ...filter } = request.query
      return await app.backups.list(filter, limit, cursor)
    },
  )

  app.get(
    '/backups/:id',
    {
      schema: {
        tags: ['backups'],
        operationId: 'getBackup',
        summary: 'One backup',
        params: IdParams,
        response: { 200: BackupRef, ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const backup = await app.backups.get(request.params.id)
      return backup ? toBackup(backup) : reply.notFound(`backup ${request.params.id} does not exist`)
    },
  )

  // HEAD before GET: Fastify would otherwise add its own HEAD route beside the GET one. Two routes,
  // so each operation has its own operationId in the spec (methods as arrays: @fastify/swagger
  // leaves out a route whose method is the string 'HEAD', taking it for Fastify's automatic one).
  const downloads = [
    [['HEAD'], 'headBackupDownload', "A backup file's headers (size, ETag, source), without the body"],
    [['GET'], 'downloadBackup', 'Download a backup file'],
  ] as const
  for (const [method, operationId, summary] of downloads) {
    app.route({
      method: [...method],
      url: '/backups/:id/download',
      schema: {
        tags: ['backups'],
        operationId,
        summary,
        description:
          'Streams the file from BACKUP_DIR, or from its off-site copy when the local file is gone, is on ' +
          'another host (`host`) or with `?source=remote`; X-Backup-Source says which. 409 when the only copy ' +
          'is a file on another host. ETag is its sha256 (If-None-Match → 304); a single `Range: bytes=…` ' +
          'gives 206, an unsatisfiable one 416; HEAD answers the same headers without the body.',
        params: IdParams,
        querystring: SourceQuery,
        headers: DownloadHeaders,
        response: {
          200: FileResponse('The whole file'),
          206: FileResponse('The requested byte range'),
          304: { description: 'Not modified: If-None-Match holds this ETag', type: 'null' },
          ...errors(400, 404, 409, 416, 502),
        },
      },
      handler: async (request, reply) =>
        await download(app, request.params.id, request.query.source, request, reply),
    })
  }

  app.delete(
    '/backups/:id',
    {
      schema: {
        tags: ['backups'],
        operationId: 'deleteBackup',
        summary: 'Delete a backup: its row, then its file and its off-site copy',
        description:
          '`?copy=local` removes only the file in BACKUP_DIR (the backup stays listed while its off-site copy ' +
          'exists); `?copy=remote` only the off-site copy. Removing the last copy removes the backup. 409 when ' +
          'the file is on another host (`host`): delete it through an instance there.',
        params: IdParams,
        querystring: CopyQuery,
        response: { 204: Type.Null(), ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const before = await app.backups.remove(request.params.id, request.query.copy)
      await request.audit('backup.delete', { target: before.id, before })
      return reply.code(204).send(null)
    },
  )

  app.post(
    '/backups/:id/verify',
    {
      schema: {
        tags: ['backups'],
        operationId: 'verifyBackup',
        summary: 'Restore a backup into a scratch database and check it',
        description:
          'Checks size and sha256, restores the file with psql or pg_restore into a new database (always ' +
          'dropped afterwards), and compares its tables and row counts with what the dump holds. The ' +
          'outcome is recorded on the backup (verifiedAt, verifyResult) and returned. The restore runs as a ' +
          'role without rights that owns the scratch database. 409 when a restore check is already running ' +
          'anywhere in the cluster (BACKUP_VERIFY_CONCURRENCY, default 1), when the only copy is a file on ' +
          'another host, or when this server cannot run the check (no client tools, no right to create a ' +
          'database or role).',
        params: IdParams,
        response: { 200: BackupRef, ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      // A restore can take longer than the idle-socket timeout; stop it if the client goes away.
      request.raw.socket?.setTimeout?.(0)
      const controller = new AbortController()
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) controller.abort(new Error('the client went away'))
      })
      const verified = toBackup(await app.backups.verify(request.params.id, controller.signal))
      await request.audit('backup.verify', {
        target: verified.id,
        after: { verifiedAt: verified.verifiedAt, verifyResult: verified.verifyResult },
      })
      return verified
    },
  )
}

export default backups
