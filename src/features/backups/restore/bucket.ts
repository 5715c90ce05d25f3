// The bucket on its own, without Steward's database (a new machine after a disaster has only the
// bucket and the age key): what an object key says about its file, the object a command line names,
// the sets a listing finds, and the newest file of a database.
//
// Rules it keeps:
// - the layout is the only source of facts besides the object's own metadata:
//   <prefix>/<kind>/backup_YYYYMMDD_HHMMSS/<file>, read from the end (a full URL does not say where
//   the prefix ends); format and encryption come from the file name as the backup wrote it, size and
//   sha256 from HeadObject. An object without sha256 metadata cannot be proved intact: refused;
// - a full s3://bucket/key names its own bucket, whatever BACKUP_REMOTE_URL says; a relative key is
//   under BACKUP_REMOTE_URL. Credentials, region and endpoint come from the AWS SDK's variables as
//   for the server, and BACKUP_REMOTE_FORCE_PATH_STYLE applies to both;
// - the set's time is the one in its name (UTC, as files.ts stamps it), not the object's upload time.
import type { Config } from '../../../config.js'
import { type BackupFormat, EXTENSIONS, fileNameFor, SET_NAME } from '../files.js'
import {
  createRemoteStore,
  parseRemoteUrl,
  type RemoteObject,
  type RemoteStore,
} from '../offsite/remote-store.js'
import { CommandError } from './command-line.js'

/** A backup file as its object key describes it. */
export interface BucketFile {
  key: string
  /** s3://bucket/key, for messages and for the command line. */
  url: string
  kind: string
  /** <kind>/backup_YYYYMMDD_HHMMSS */
  setDir: string
  /** <kind>/backup_YYYYMMDD_HHMMSS/<name>, as the backups table would record it. */
  file: string
  name: string
  scope: 'database' | 'globals'
  /** The database's name as its file name has it (characters outside [A-Za-z0-9_.-] became "_"). */
  database: string
  format: BackupFormat
  encrypted: boolean
  /** From the set's name; null when it holds no valid time. */
  createdAt: string | null
  bytes: number
}

const GLOBALS = 'globals.sql'
const AGE = '.age'
const BY_EXTENSION = Object.entries(EXTENSIONS) as Array<[BackupFormat, string]>

export const s3Url = (store: RemoteStore, key: string) => `s3://${store.bucket}/${key}`

/** The file `key` names, or null when the key does not follow the layout. */
export function describeKey(store: RemoteStore, key: string, bytes = 0): BucketFile | null {
  const parts = key.split('/')
  const [kind, set, name] = parts.slice(-3)
  if (parts.length < 3 || !kind || !set || !name || !SET_NAME.test(set)) return null
  const encrypted = name.endsWith(AGE)
  const plain = encrypted ? name.slice(0, -AGE.length) : name
  const match = BY_EXTENSION.find(([, ext]) => plain.endsWith(ext) && plain.length > ext.length)
  if (!match || plain.startsWith('.')) return null
  const [format, ext] = match
  const scope = plain === GLOBALS ? 'globals' : 'database'
  const setDir = `${kind}/${set}`
  const database = plain.slice(0, -ext.length)
  const file = `${setDir}/${name}`
  const createdAt = setTime(set)
  return {
    key,
    url: s3Url(store, key),
    kind,
    setDir,
    file,
    name,
    scope,
    database,
    format,
    encrypted,
    createdAt,
    bytes,
  }
}

/** backup_20261128_010000[_…] → 2026-11-28T01:00:00.000Z */
function setTime(set: string): string | null {
  const m = /^backup_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})/.exec(set)
  if (!m) return null
  const date = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

/** A store for `url` (s3://bucket[/prefix]) with the server's settings; the caller closes it. */
export function openBucket(url: string, config: Config): RemoteStore {
  try {
    return createRemoteStore({ url, forcePathStyle: config.backupRemoteForcePathStyle })
  } catch (err) {
    throw new CommandError((err as Error).message.replace('BACKUP_REMOTE_URL', url), 2)
  }
}

/** The store of BACKUP_REMOTE_URL; `why` says what needed it when it is not set. */
export function configuredBucket(config: Config, why: string): RemoteStore {
  if (!config.backupRemoteUrl)
    throw new CommandError(`${why}, and BACKUP_REMOTE_URL is not set: set it, or give a full s3:// URL`, 2)
  return openBucket(config.backupRemoteUrl, config)
}

/**
 * The store and file of an object named on the command line: s3://bucket/key, or a key relative to
 * BACKUP_REMOTE_URL (`daily/backup_20261128_010000/shop.sql.age`). The caller closes the store.
 */
export function locateObject(location: string, config: Config): { store: RemoteStore; file: BucketFile } {
  if (location.endsWith('/'))
    throw new CommandError(
      `${location} names a set, not a file: add the file's name (steward backup sets --remote lists them)`,
      2,
    )
  const { store, key } = /^s3:\/\//i.test(location)
    ? inBucket(location, config)
    : underPrefix(location, config)
  const file = describeKey(store, key)
  if (file) return { store, file }
  store.close()
  throw new CommandError(
    `${location} is not a backup file: expected <kind>/backup_YYYYMMDD_HHMMSS/<name>` +
      `{${Object.values(EXTENSIONS).join(',')}}[.age] at the end of the key`,
    2,
  )
}

function inBucket(url: string, config: Config) {
  let parsed: { bucket: string; prefix: string }
  try {
    parsed = parseRemoteUrl(url)
  } catch (err) {
    throw new CommandError((err as Error).message.replace('BACKUP_REMOTE_URL', url), 2)
  }
  return { store: openBucket(`s3://${parsed.bucket}`, config), key: parsed.prefix }
}

function underPrefix(location: string, config: Config) {
  const store = configuredBucket(config, `"${location}" is a key relative to BACKUP_REMOTE_URL`)
  try {
    return { store, key: store.keyFor(location) }
  } catch (err) {
    store.close()
    throw new CommandError((err as Error).message, 2)
  }
}

/** The object's size and sha256 metadata; undefined when there is no such object. */
async function stat(store: RemoteStore, file: BucketFile) {
  return await store.head(file.key).catch((err: Error) => {
    throw new CommandError(`cannot read ${file.url}: ${err.message}`)
  })
}

export type ProvableFile = BucketFile & { sha256: string }

/** The object's facts; refused when it is missing or carries no sha256 to prove its bytes with. */
export async function headFile(
  store: RemoteStore,
  file: BucketFile,
  head?: RemoteObject,
): Promise<ProvableFile> {
  const found = head ?? (await stat(store, file))
  if (!found)
    throw new CommandError(
      `there is no object ${file.url} (or no bucket ${store.bucket}); steward backup sets --remote lists the sets`,
    )
  if (!found.sha256 || !/^[0-9a-f]{64}$/.test(found.sha256))
    throw new CommandError(
      `${file.url} has no sha256 metadata (Steward stores one with every upload), so its bytes cannot ` +
        'be proved intact; restore it by hand (README, "Disaster recovery") if you trust it',
    )
  return { ...file, bytes: found.bytes, sha256: found.sha256 }
}

/** The set's globals.sql (encrypted like `main`, else the other way), or null when it has none. */
export async function globalsBeside(store: RemoteStore, main: BucketFile): Promise<ProvableFile | null> {
  const dir = main.key.slice(0, -main.name.length)
  const names = main.encrypted ? [GLOBALS + AGE, GLOBALS] : [GLOBALS, GLOBALS + AGE]
  for (const name of names) {
    const file = describeKey(store, dir + name) as BucketFile
    const head = await stat(store, file)
    if (head) return await headFile(store, file, head)
  }
  return null
}

export interface BucketSet {
  setDir: string
  kind: string
  createdAt: string | null
  /** s3://bucket/prefix/<setDir>/ */
  url: string
  files: BucketFile[]
}

/** Every set under the store's prefix, newest first (by the time in its name), its files by name. */
export async function listBucketSets(store: RemoteStore): Promise<BucketSet[]> {
  const under = store.prefix ? `${store.prefix}/` : ''
  const objects = await store.list(under).catch((err: Error) => {
    throw new CommandError(`cannot list s3://${store.bucket}/${under}: ${err.message}`)
  })
  const sets = new Map<string, BucketSet>()
  for (const object of objects) {
    const file = describeKey(store, object.key, object.bytes)
    // Only <prefix>/<kind>/<set>/<file>: nothing nested deeper, nothing beside the layout.
    if (!file || object.key !== `${under}${file.file}`) continue
    const set = sets.get(file.setDir) ?? {
      setDir: file.setDir,
      kind: file.kind,
      createdAt: file.createdAt,
      url: s3Url(store, `${under}${file.setDir}/`),
      files: [],
    }
    set.files.push(file)
    sets.set(file.setDir, set)
  }
  const newestFirst = (a: BucketSet, b: BucketSet) =>
    setName(b).localeCompare(setName(a)) || a.kind.localeCompare(b.kind)
  for (const set of sets.values()) set.files.sort((a, b) => a.name.localeCompare(b.name))
  return [...sets.values()].sort(newestFirst)
}

const setName = (set: BucketSet) => set.setDir.slice(set.kind.length + 1)

/** The newest file of `database` under BACKUP_REMOTE_URL, whatever its kind. The caller closes the store. */
export async function locateLatest(database: string, config: Config) {
  const store = configuredBucket(config, '--latest reads the bucket')
  try {
    return { store, file: await latestFile(store, database) }
  } catch (err) {
    store.close()
    throw err
  }
}

async function latestFile(store: RemoteStore, database: string): Promise<BucketFile> {
  const base = fileNameFor(database, 'plain', new Set()).slice(0, -EXTENSIONS.plain.length)
  for (const set of await listBucketSets(store)) {
    const file = set.files.find((f) => f.scope === 'database' && f.database === base)
    if (file) return file
  }
  throw new CommandError(
    `no file of database "${database}" in s3://${store.bucket}/${store.prefix} ` +
      '(steward backup sets --remote lists what is there)',
  )
}
