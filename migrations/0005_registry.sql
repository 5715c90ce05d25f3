-- Code-registry snapshots: one row per registry-sync run, holding what the analyzers found in
-- REGISTRY_SOURCE_DIR and how it differs from the previous snapshot of the same directory.

create table registry_snapshots (
  id            bigint generated always as identity primary key,
  -- Runs are pruned after RUNS_RETENTION_DAYS; a snapshot outlives the run that made it.
  run_id        bigint references job_runs (id) on delete set null,
  source_dir    text not null,
  created_at    timestamptz not null default now(),
  summary       jsonb not null,
  architecture  jsonb not null,
  quality       jsonb not null,
  dependencies  jsonb not null,
  trends        jsonb not null,
  -- Null for the first snapshot of a directory: there is nothing to compare with.
  diff          jsonb
);

-- The previous snapshot of a directory (for the diff) is the newest one with that source_dir.
create index registry_snapshots_source_dir_id on registry_snapshots (source_dir, id desc);

-- The files of the newest snapshot of each directory, so the next snapshot can tell which files
-- were added, removed or changed. Rows of older snapshots are deleted when a newer one is stored:
-- a large tree costs one set of rows, not one per day.
create table registry_files (
  snapshot_id bigint not null references registry_snapshots (id) on delete cascade,
  path        text not null,
  language    text,
  -- Non-blank lines; null for a file too large to count.
  lines       integer,
  primary key (snapshot_id, path)
);
