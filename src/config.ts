// Configuration: the environment turned into a typed, validated object. The only module that reads
// process.env; everything else receives a Config.
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { type Static, Type } from 'typebox'
import Value from 'typebox/value'
import { isValidTimezone } from './lib/timezone.js'

const LogLevel = Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  BACKUP_DIR: Type.String({ minLength: 1, default: './.db-backup' }),
  BACKUP_DATABASES: Type.Optional(Type.String()),
  BACKUP_KEEP_HOURLY: Type.Integer({ minimum: 1, default: 6 }),
  BACKUP_KEEP_DAILY: Type.Integer({ minimum: 1, default: 7 }),
  BACKUP_FORMAT: Type.Enum(['plain', 'custom'], { default: 'plain' }),
  BACKUP_COMPRESS: Type.Enum(['none', 'gzip'], { default: 'none' }),
  BACKUP_PG_BIN_DIR: Type.Optional(Type.String({ minLength: 1 })),
  BACKUP_KEEP_WEEKLY: Type.Integer({ minimum: 0, default: 0 }),
  BACKUP_KEEP_MONTHLY: Type.Integer({ minimum: 0, default: 0 }),
  BACKUP_REMOTE_URL: Type.Optional(Type.String({ pattern: '^s3://[^/]+' })),
  BACKUP_REMOTE_FORCE_PATH_STYLE: Type.Boolean({ default: false }),
  BACKUP_REMOTE_KEEP_HOURLY: Type.Integer({ minimum: 0, default: 24 }),
  BACKUP_REMOTE_KEEP_DAILY: Type.Integer({ minimum: 0, default: 7 }),
  BACKUP_REMOTE_KEEP_WEEKLY: Type.Integer({ minimum: 0, default: 4 }),
  BACKUP_REMOTE_KEEP_MONTHLY: Type.Integer({ minimum: 0, default: 12 }),
  BACKUP_AGE_RECIPIENTS: Type.Optional(Type.String({ minLength: 1 })),
  BACKUP_AGE_RECIPIENTS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  BACKUP_AGE_IDENTITY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  BACKUP_HOST: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  BACKUP_VERIFY_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
  TEMPLATES_DIR: Type.String({ minLength: 1, default: './templates_data' }),
  EMBEDDINGS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  EMBEDDINGS_MODEL: Type.String({ minLength: 1, default: 'Qodo/Qodo-Embed-1-1.5B' }),
  EMBEDDINGS_API_KEY: Type.Optional(Type.String({ minLength: 1 })),
  EMBEDDINGS_BATCH: Type.Integer({ minimum: 1, maximum: 2048, default: 32 }),
  PGVECTOR: Type.Enum(['auto', 'off'], { default: 'auto' }),
  TEMPLATE_SEARCH_PER_MINUTE: Type.Integer({ minimum: 1, default: 30 }),
  SCHEDULER_TIMEZONE: Type.String({ minLength: 1, default: 'UTC' }),
  SCHEDULER_ENABLED: Type.Boolean({ default: true }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 30_000 }),
  RUN_HEARTBEAT_MS: Type.Integer({ minimum: 100, default: 5000 }),
  RUN_STALE_MS: Type.Integer({ minimum: 500, default: 30_000 }),
  RUN_POLL_MS: Type.Integer({ minimum: 50, default: 1000 }),
  RUN_LOG_MAX_LINES: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 }),
  RUN_LOG_MAX_BYTES: Type.Integer({ minimum: 0, maximum: 64 * 2 ** 20, default: 2 ** 20 }),
  MAX_CONCURRENT_RUNS: Type.Integer({ minimum: 1, maximum: 1000, default: 8 }),
  RETRY_BASE_MS: Type.Integer({ minimum: 0, default: 10_000 }),
  RETRY_MAX_MS: Type.Integer({ minimum: 0, default: 10 * 60_000 }),
  RUNS_RETENTION_DAYS: Type.Integer({ minimum: 1, default: 30 }),
  RUNS_CACHE_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  CACHE_CLEAR_BATCH: Type.Integer({ minimum: 1, maximum: 100_000, default: 5000 }),
  REGISTRY_SOURCE_DIR: Type.String({ minLength: 1, default: '.' }),
  LOG_LEVEL: Type.Enum(LogLevel.enum, { default: 'info' }),
  STEWARD_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 512 })),
  RATE_LIMIT_MUTATIONS: Type.Integer({ minimum: 1, default: 300 }),
  AUTH_FAILURES_PER_MINUTE: Type.Integer({ minimum: 1, default: 30 }),
  TRUST_PROXY: Type.Optional(Type.String({ minLength: 1 })),
  OVERLOAD_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 1, default: 1000 }),
  OVERLOAD_HEAP_MB: Type.Integer({ minimum: 0, default: 0 }),
  INSTANCE_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 512 })),
  ALERT_WEBHOOK_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  ALERT_CHECK_MS: Type.Integer({ minimum: 50, default: 15_000 }),
  ALERT_RETRY_BASE_MS: Type.Integer({ minimum: 10, default: 5000 }),
  ALERT_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  EVENTS_PING_MS: Type.Integer({ minimum: 50, default: 15_000 }),
  EVENTS_STREAMS_PER_TOKEN: Type.Integer({ minimum: 1, default: 10 }),
})

export type Env = Static<typeof ConfigSchema>

export interface Config {
  port: number
  host: string
  /** Unset: start an embedded PostgreSQL under dataDir/pg. */
  databaseUrl?: string
  dataDir: string
  backupDir: string
  backupDatabases: string[]
  backupKeepHourly: number
  backupKeepDaily: number
  /** plain: pg_dump SQL (.sql); custom: pg_dump -Fc archives (.dump) for pg_restore. */
  backupFormat: 'plain' | 'custom'
  /** gzip: plain dumps compressed by pg_dump (.sql.gz). Custom archives are always compressed. */
  backupCompress: 'none' | 'gzip'
  /** Where pg_dump, pg_restore and psql are; unset: PATH, then /usr/lib/postgresql/<major>/bin. */
  backupPgBinDir?: string
  /** Local retention beyond hourly/daily: the newest daily set of each of this many ISO weeks / months. */
  backupKeepWeekly: number
  backupKeepMonthly: number
  /** Off-site copies (s3://bucket/prefix); credentials, region and endpoint from the AWS SDK's variables. */
  backupRemoteUrl?: string
  backupRemoteForcePathStyle: boolean
  /** Off-site retention: hourly and daily sets, plus the newest daily of each ISO week and month. */
  backupRemoteKeep: { hourly: number; daily: number; weekly: number; monthly: number }
  /** age public keys (age1…), comma-separated, and/or a file of them; set: every file is encrypted. */
  backupAgeRecipients?: string
  backupAgeRecipientsFile?: string
  /** An age identity file: restore checks and drills decrypt with it (else they check size and sha256). */
  backupAgeIdentityFile?: string
  /** The host whose BACKUP_DIR this is: recorded on each backup; its local file is handled only here. */
  backupHost: string
  /** Restore checks (verify, drills) running at once, cluster-wide; each restores a full scratch copy. */
  backupVerifyConcurrency: number
  templatesDir: string
  /** OpenAI-compatible embeddings server (with or without /v1); unset: the local lexical embedder. */
  embeddingsUrl?: string
  embeddingsModel: string
  embeddingsApiKey?: string
  /** Texts per request to the embeddings server. */
  embeddingsBatch: number
  /** auto: store template embeddings with pgvector when the server has it; off: never enable it. */
  pgvector: 'auto' | 'off'
  /** GET /templates/search requests per token per minute (each may call the embeddings server). */
  templateSearchPerMinute: number
  schedulerTimezone: string
  /** false: serve the API but fire no schedules (useful for read-only replicas and some tests). */
  schedulerEnabled: boolean
  /** How long running jobs may finish after SIGTERM before they are aborted. */
  shutdownGraceMs: number
  /** How often a running run's row is marked alive. */
  runHeartbeatMs: number
  /** A running run whose heartbeat is older than this is failed as abandoned (and retried). */
  runStaleMs: number
  /** How often each instance looks for due queued runs (retries) and abandoned ones. */
  runPollMs: number
  /** What each run's own log keeps (lines, bytes of messages and fields); 0 lines: none. */
  runLog: { maxLines: number; maxBytes: number }
  /** At most this many runs execute in this process at once; more wait queued (or start elsewhere). */
  maxConcurrentRuns: number
  /** Retry n waits min(retryMaxMs, retryBaseMs × 2^(n−1)) × (1 + jitter), jitter in [0, 0.25). */
  retryBaseMs: number
  retryMaxMs: number
  runsRetentionDays: number
  /** GET /runs pages are served from memory for at most this long (dropped on any run change); 0: off. */
  runsCacheMs: number
  cacheClearBatch: number
  /** The source tree registry-sync analyses (absolute). */
  registrySourceDir: string
  logLevel: Static<typeof LogLevel>
  adminToken?: string
  /** Requests that change something, per token and endpoint per minute. */
  rateLimitMutations: number
  /** Failed authentications per client address per minute before it is refused for the minute. */
  authFailuresPerMinute: number
  /**
   * Fastify's trustProxy: whose X-Forwarded-For to believe for the client address (false: nobody's;
   * true: any; a number: that many hops; addresses or CIDRs: those proxies).
   */
  trustProxy: boolean | number | string[]
  /** Shed API requests (503) while the event loop's mean delay is over this. */
  overloadEventLoopDelayMs: number
  /** Shed API requests while the V8 heap is over this many MiB; 0: no heap limit. */
  overloadHeapMb: number
  /** Recorded on every run this process executes. */
  instanceId: string
  /** When set, GET /metrics needs `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string
  /** Where alerts are POSTed (runs failed for good, schedules late and recovered); unset: no alerts. */
  alertWebhookUrl?: string
  /** How often failed runs and schedule health are checked for alerts. */
  alertCheckMs: number
  /** Delivery retry n waits min(10 min, alertRetryBaseMs × 2^(n−1)) × (1 + jitter). */
  alertRetryBaseMs: number
  alertMaxAttempts: number
  /** How often GET /events sends a keep-alive comment. */
  eventsPingMs: number
  /** GET /events streams one token may hold open on one instance. */
  eventsStreamsPerToken: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Environment variables are strings; convert the ones the schema says are numbers or booleans. */
function coerce(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, schema] of Object.entries(ConfigSchema.properties)) {
    const raw = env[key]
    if (raw === undefined || raw === '') continue
    const type = (schema as { type?: string }).type
    if (type === 'integer') out[key] = /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw
    else if (type === 'boolean')
      out[key] = /^(1|true|yes|on)$/i.test(raw) ? true : /^(0|false|no|off)$/i.test(raw) ? false : raw
    else out[key] = raw
  }
  return out
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
}

/** "BACKUP_FORMAT must be one of: plain, custom (got "tar")": the variable, the rule, the value. */
function describe(key: string, value: unknown, error: { keyword: string; params: unknown; message: string }) {
  const shown = /TOKEN|URL|KEY/.test(key) ? '(hidden)' : JSON.stringify(value)
  const params = error.params as { allowedValues?: unknown[]; type?: string }
  const rule =
    error.keyword === 'enum' && params.allowedValues
      ? `must be one of: ${params.allowedValues.join(', ')}`
      : error.keyword === 'type' && params.type
        ? `must be ${TYPE_WORDS[params.type] ?? `of type ${params.type}`}`
        : error.message
  return `${key} ${rule} (got ${shown})`
}

/** TRUST_PROXY: unset or false, true, a hop count, or a comma-separated list of addresses and CIDRs. */
function parseTrustProxy(raw: string | undefined): boolean | number | string[] {
  const value = raw?.trim() ?? ''
  if (value === '' || /^(0|false|no|off)$/i.test(value)) return false
  if (/^(true|yes|on)$/i.test(value)) return true
  if (/^\d+$/.test(value)) return Number(value)
  const entries = value.split(',').map((s) => s.trim())
  const bad = entries.filter((entry) => !isAddressOrCidr(entry))
  if (bad.length > 0) {
    const which = bad.map((b) => JSON.stringify(b)).join(', ')
    throw new ConfigError(
      `TRUST_PROXY=${JSON.stringify(raw)} is invalid: ${which} is not an IP address or CIDR; use true, a hop count, or addresses and CIDRs separated by commas (e.g. 10.0.0.0/8,127.0.0.1)`,
    )
  }
  return entries
}

function isAddressOrCidr(entry: string): boolean {
  const [address = '', bits, ...rest] = entry.split('/')
  const family = net.isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (bits === undefined) return true
  return /^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Value.Default(ConfigSchema, coerce(env)) as Record<string, unknown>
  const errors = Value.Errors(ConfigSchema, input).filter((e) => e.instancePath !== '')
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const key = e.instancePath.slice(1)
      return describe(key, input[key], e)
    })
    throw new ConfigError(`bad configuration:\n  ${[...new Set(lines)].join('\n  ')}`)
  }
  const e = input as Env
  if (e.RUN_STALE_MS < 2 * e.RUN_HEARTBEAT_MS) {
    // Otherwise one late heartbeat would get a healthy run failed as abandoned.
    throw new ConfigError(
      `RUN_STALE_MS=${e.RUN_STALE_MS} must be at least twice RUN_HEARTBEAT_MS=${e.RUN_HEARTBEAT_MS}`,
    )
  }
  if (!isValidTimezone(e.SCHEDULER_TIMEZONE)) {
    throw new ConfigError(
      `SCHEDULER_TIMEZONE="${e.SCHEDULER_TIMEZONE}" is not an IANA timezone (e.g. UTC, Europe/Berlin)`,
    )
  }
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.DATA_DIR),
    backupDir: path.resolve(e.BACKUP_DIR),
    backupDatabases: (e.BACKUP_DATABASES ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    backupKeepHourly: e.BACKUP_KEEP_HOURLY,
    backupKeepDaily: e.BACKUP_KEEP_DAILY,
    backupFormat: e.BACKUP_FORMAT,
    backupCompress: e.BACKUP_COMPRESS,
    backupPgBinDir: e.BACKUP_PG_BIN_DIR ? path.resolve(e.BACKUP_PG_BIN_DIR) : undefined,
    backupKeepWeekly: e.BACKUP_KEEP_WEEKLY,
    backupKeepMonthly: e.BACKUP_KEEP_MONTHLY,
    backupRemoteUrl: e.BACKUP_REMOTE_URL,
    backupRemoteForcePathStyle: e.BACKUP_REMOTE_FORCE_PATH_STYLE,
    backupRemoteKeep: {
      hourly: e.BACKUP_REMOTE_KEEP_HOURLY,
      daily: e.BACKUP_REMOTE_KEEP_DAILY,
      weekly: e.BACKUP_REMOTE_KEEP_WEEKLY,
      monthly: e.BACKUP_REMOTE_KEEP_MONTHLY,
    },
    backupAgeRecipients: e.BACKUP_AGE_RECIPIENTS,
    backupAgeRecipientsFile: e.BACKUP_AGE_RECIPIENTS_FILE
      ? path.resolve(e.BACKUP_AGE_RECIPIENTS_FILE)
      : undefined,
    backupAgeIdentityFile: e.BACKUP_AGE_IDENTITY_FILE ? path.resolve(e.BACKUP_AGE_IDENTITY_FILE) : undefined,
    backupHost: e.BACKUP_HOST ?? os.hostname(),
    backupVerifyConcurrency: e.BACKUP_VERIFY_CONCURRENCY,
    templatesDir: path.resolve(e.TEMPLATES_DIR),
    embeddingsUrl: e.EMBEDDINGS_URL,
    embeddingsModel: e.EMBEDDINGS_MODEL,
    embeddingsApiKey: e.EMBEDDINGS_API_KEY,
    embeddingsBatch: e.EMBEDDINGS_BATCH,
    pgvector: e.PGVECTOR,
    templateSearchPerMinute: e.TEMPLATE_SEARCH_PER_MINUTE,
    schedulerTimezone: e.SCHEDULER_TIMEZONE,
    schedulerEnabled: e.SCHEDULER_ENABLED,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    runHeartbeatMs: e.RUN_HEARTBEAT_MS,
    runStaleMs: e.RUN_STALE_MS,
    runPollMs: e.RUN_POLL_MS,
    runLog: { maxLines: e.RUN_LOG_MAX_LINES, maxBytes: e.RUN_LOG_MAX_BYTES },
    maxConcurrentRuns: e.MAX_CONCURRENT_RUNS,
    retryBaseMs: e.RETRY_BASE_MS,
    retryMaxMs: e.RETRY_MAX_MS,
    runsRetentionDays: e.RUNS_RETENTION_DAYS,
    runsCacheMs: e.RUNS_CACHE_MS,
    cacheClearBatch: e.CACHE_CLEAR_BATCH,
    registrySourceDir: path.resolve(e.REGISTRY_SOURCE_DIR),
    logLevel: e.LOG_LEVEL,
    adminToken: e.STEWARD_ADMIN_TOKEN,
    rateLimitMutations: e.RATE_LIMIT_MUTATIONS,
    authFailuresPerMinute: e.AUTH_FAILURES_PER_MINUTE,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    overloadEventLoopDelayMs: e.OVERLOAD_EVENT_LOOP_DELAY_MS,
    overloadHeapMb: e.OVERLOAD_HEAP_MB,
    instanceId: e.INSTANCE_ID ?? `${os.hostname()}:${process.pid}`,
    metricsToken: e.METRICS_TOKEN,
    alertWebhookUrl: e.ALERT_WEBHOOK_URL,
    alertCheckMs: e.ALERT_CHECK_MS,
    alertRetryBaseMs: e.ALERT_RETRY_BASE_MS,
    alertMaxAttempts: e.ALERT_MAX_ATTEMPTS,
    eventsPingMs: e.EVENTS_PING_MS,
    eventsStreamsPerToken: e.EVENTS_STREAMS_PER_TOKEN,
  }
}
