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
    restoreSkipped: Type.Optional(
      Type.String({
        description:
          'Why the file was checked by size and sha256 only (an encrypted file and no BACKUP_AGE_IDENTITY_FILE).',
      }),
    ),
    source: Type.Optional(Type.Enum(['local', 'remote'], { description: 'Which copy was checked.' })),
    durationMs: Type.Integer(),
  },
  { description: 'The last restore check (POST /backups/{id}/verify, or the backup-drill schedule).' },
)

export const RemoteCopy = Type.Object(
  {
    state: Type.Enum(['pending', 'uploaded', 'failed'], {
      description: 'pending: not uploaded yet; failed: the last upload failed (retried by later runs).',
    }),
    key: Type.String({ description: 'Object key: <prefix>/<kind>/backup_YYYYMMDD_HHMMSS/<file>.' }),
    uploadedAt: Nullable(Timestamp),
    error: Nullable(Type.String({ description: 'Why the last upload failed.' })),
  },
  { description: 'The off-site copy (BACKUP_REMOTE_URL); null when none was configured.' },
)

export const Anomaly = Type.Object(
  {
    reason: Type.Enum(['smaller', 'larger'], {
      description: 'smaller: under 50 % of the median; larger: over 300 %.',
    }),
    bytes: Type.Integer(),
    medianBytes: Type.Integer({
      description: 'Of the previous sets (3 to 7) of the same database and kind.',
    }),
  },
  { description: 'This file is far smaller or larger than usual; the backup is kept, an alert is sent.' },
)

export const Backup = Type.Object(
  {
    id: Type.Integer(),
    kind: BackupKind,
    scope: Type.Enum(['database', 'globals'], {
      description:
        'database: one database (pg_dump); globals: the roles of the server (pg_dumpall --globals-only).',
    }),
    database: Type.String({ description: 'The database dumped (for globals: the one connected to).' }),
    file: Type.String({
      description: 'Path relative to BACKUP_DIR: <kind>/backup_YYYYMMDD_HHMMSS/<db>.sql[.age]',
    }),
    bytes: Type.Integer(),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Of the stored bytes; also the ETag.' }),
    encrypted: Type.Boolean({ description: 'age-encrypted (BACKUP_AGE_RECIPIENTS): the file ends in .age.' }),
    local: Type.Boolean({ description: 'The file is still in BACKUP_DIR (else only the off-site copy is).' }),
    host: Nullable(
      Type.String({
        description:
          'The host whose BACKUP_DIR holds the local file (its BACKUP_HOST): only the instances there read ' +
          'or remove it; elsewhere the off-site copy is used. null: recorded before hosts were, treated as ' +
          'local everywhere.',
      }),
    ),
    remote: Nullable(RemoteCopy),
    anomaly: Nullable(Anomaly),
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
export type RemoteCopy = Static<typeof RemoteCopy>
export type Anomaly = Static<typeof Anomaly>

/** A backup as stored: also its set directory and format, which stay internal (the file name says both). */
export type StoredBackup = Backup & { setDir: string; format: BackupFormat }
