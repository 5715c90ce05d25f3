-- Core tables: schedules, the run history and the cache that cache-clear maintains.

create table schedules (
  name       text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  job        text not null,
  cron       text not null,
  timezone   text not null,
  args       jsonb not null default '{}',
  enabled    boolean not null default true,
  overlap    text not null default 'skip' check (overlap in ('skip', 'allow')),
  catch_up   text not null default 'latest' check (catch_up in ('none', 'latest')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Default schedules are seeded once each: deleting one is an edit that survives restarts.
create table schedule_seeds (
  name      text primary key,
  seeded_at timestamptz not null default now()
);

create table job_runs (
  id            bigint generated always as identity primary key,
  job           text not null,
  -- No foreign key: the history of a deleted schedule stays readable.
  schedule      text,
  trigger       text not null check (trigger in ('schedule', 'manual', 'retry', 'catch-up')),
  state         text not null check (state in ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
  attempt       integer not null default 1 check (attempt >= 1),
  max_attempts  integer not null default 1 check (max_attempts >= 1),
  retry_of      bigint references job_runs (id) on delete set null,
  args          jsonb not null default '{}',
  scheduled_for timestamptz,
  queued_at     timestamptz not null default now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  heartbeat_at  timestamptz,
  cancel_requested_at timestamptz,
  result        jsonb,
  error         jsonb,
  instance      text
);

-- The claim: each fire of a schedule gets exactly one row, whichever instance inserts it first.
create unique index job_runs_fire_key on job_runs (schedule, scheduled_for)
  where trigger in ('schedule', 'catch-up');

-- Listing is newest first (id desc) with optional filters; these keep the filtered pages cheap.
create index job_runs_job_id on job_runs (job, id desc);
create index job_runs_schedule_id on job_runs (schedule, id desc);
create index job_runs_state_id on job_runs (state, id desc);
create index job_runs_active on job_runs (schedule) where state in ('queued', 'running');

create table analysis_cache (
  key        text primary key,
  value      jsonb not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz
);
create index analysis_cache_expires_at on analysis_cache (expires_at) where expires_at is not null;
