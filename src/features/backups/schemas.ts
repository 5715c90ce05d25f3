// The backup representations of the API; the TypeScript types of a backup derive from them.
import { type Static, Type } from 'typebox'
import { Nullable, Timestamp } from '../../lib/schemas.js'
import { type BackupFormat, KINDS } from './files.js'

export const BackupKind = Type.Enum([...KINDS], {
  description: 'hourly and daily sets are pruned by retention; manual ones are kept until deleted.',
})

export const VerifyResult = Type.Object(
  {
    ok: Type.Boolean({ description: 'The file is intact and restores to the tables and rows it holds.' }),
    checksum: Type.Enum(['ok', 'mismatch', 'missing'], {
      description: 'Size and sha256 against the record.',
    }),
    restoredWith: Type.Optional(Type.Enum(['psql', 'pg_restore'])),
    tables: Type.Optional(Type.Integer({ description: 'Tables in the dump.' })),
    rows: Type.Optional(Type.Integer({ description: 'Rows in the dump, all tables.' })),
    missingTables: Type.Optional(Type.Array(Type.String(), { description: 'In the dump, not restored.' })),
    extraTables: Type.Optional(Type.Array(Type.String(), { description: 'Restored, not in the dump.' })),
    countMismatches: Type.Optional(
      Type.Array(Type.Object({ table: Type.String(), dump: Type.Integer(), restored: Type.Integer() })),
    ),
    error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
    durationMs: Type.Integer(),
  },
  { description: 'The last restore check (POST /backups/{id}/verify).' },
)

export const Backup = Type.Object(
  {
    id: Type.Integer(),
    kind: BackupKind,
    database: Type.String(),
    file: Type.String({ description: 'Path relative to BACKUP_DIR: <kind>/backup_YYYYMMDD_HHMMSS/<db>.sql' }),
    bytes: Type.Integer(),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Also the ETag of the download.' }),
    runId: Nullable(Type.Integer({ description: 'The run that made it (null once that run is pruned).' })),
    createdAt: Timestamp,
    verifiedAt: Nullable(Timestamp),
    verifyResult: Nullable(VerifyResult),
  },
  { $id: 'Backup' },
)

export const BackupRef = Type.Ref('Backup')

export type Backup = Static<typeof Backup>
export type VerifyResult = Static<typeof VerifyResult>

/** A backup as stored: also its set directory and format, which stay internal (the file name says both). */
export type StoredBackup = Backup & { setDir: string; format: BackupFormat }
