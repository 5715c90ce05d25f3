-- Backups: one row per dump file that was written, fsynced and renamed into place. A set (one run
-- of database-backup) is the rows sharing `set_dir`; they are inserted together, in one transaction,
-- once every file of the set is on disk.

create table backups (
  id            bigint generated always as identity primary key,
  kind          text not null check (kind in ('hourly', 'daily', 'manual')),
  database      text not null,
  -- Relative to BACKUP_DIR: <kind>/backup_YYYYMMDD_HHMMSS/<db>.sql. Never absolute, never `..`: only
  -- paths that stay inside BACKUP_DIR can be stored, whatever writes the row.
  file          text not null unique check (file ~ '^(hourly|daily|manual)/backup_[0-9]{8}_[0-9]{6}(_[0-9]+)*/[^/]+$'
                                           and file !~ '(^|/)\.\.?(/|$)'),
  set_dir       text not null,
  format        text not null check (format in ('plain', 'custom', 'gzip')),
  bytes         bigint not null check (bytes >= 0),
  sha256        text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  -- Runs are pruned after RUNS_RETENTION_DAYS; a backup outlives the run that made it.
  run_id        bigint references job_runs (id) on delete set null,
  created_at    timestamptz not null default now(),
  verified_at   timestamptz,
  verify_result jsonb,
  check (file like set_dir || '/%')
);

-- Listing is newest first with optional filters; retention walks the sets of one kind.
create index backups_kind_id on backups (kind, id desc);
create index backups_database_id on backups (database, id desc);
create index backups_set_dir on backups (set_dir);
