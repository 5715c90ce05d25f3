-- Observability: run totals for /metrics, run change notifications for GET /events, the indexes
-- schedule health needs, and the alerts outbox.

-- Runs that reached each state, per job, ever (a run that succeeded counts once in queued, running
-- and succeeded). Kept by the statement triggers below, so /metrics reads a few dozen rows whatever
-- the size of job_runs, the totals agree across instances, and pruning old runs does not make them
-- go backwards (Prometheus counters must not). Rows present before this migration count once, in
-- their current state.
create table job_run_totals (
  job   text not null,
  state text not null,
  total bigint not null default 0,
  primary key (job, state)
);

insert into job_run_totals (job, state, total)
select job, state, count(*) from job_runs group by job, state;

-- Every instance LISTENs on steward_runs and fans run changes out to its SSE clients. The payload is
-- the changed row as JSON when it fits NOTIFY's 8000-byte limit, else just its id (listeners read
-- the row). A statement changing more than 100 runs (a bulk insert, a mass update) sends their ids
-- in lists of 500 instead of one notification per run. NOTIFY is transactional: listeners hear of a
-- change once it is committed, in commit order.
create function steward_runs_publish(changed job_runs[]) returns void language plpgsql as $$
declare
  r job_runs;
  payload text;
begin
  foreach r in array changed loop
    payload := json_build_object('run', row_to_json(r))::text;
    if octet_length(payload) > 7900 then
      payload := json_build_object('id', r.id)::text;
    end if;
    perform pg_notify('steward_runs', payload);
  end loop;
end $$;

create function steward_runs_publish_ids(ids bigint[]) returns void language sql as $$
  select pg_notify('steward_runs', json_build_object('ids', chunk)::text)
  from (
    select array_agg(id order by id) as chunk
    from (select id, (row_number() over (order by id) - 1) / 500 as n from unnest(ids) id) numbered
    group by n
  ) chunks
$$;

create function steward_runs_inserted() returns trigger language plpgsql as $$
begin
  insert into job_run_totals (job, state, total)
  select job, state, count(*) from inserted group by job, state
  on conflict (job, state) do update set total = job_run_totals.total + excluded.total;
  if (select count(*) from inserted) > 100 then
    perform steward_runs_publish_ids(array(select id from inserted));
  else
    perform steward_runs_publish(array(select i::job_runs from inserted i order by i.id));
  end if;
  return null;
end $$;

-- Fires for every update (heartbeats included: a statement trigger with transition tables cannot
-- name columns); only rows whose state changed count.
create function steward_runs_updated() returns trigger language plpgsql as $$
declare
  ids bigint[];
begin
  ids := array(
    select n.id from after_update n join before_update o on o.id = n.id
    where n.state is distinct from o.state order by n.id);
  if cardinality(ids) = 0 then
    return null;
  end if;
  insert into job_run_totals (job, state, total)
  select job, state, count(*) from after_update where id = any(ids) group by job, state
  on conflict (job, state) do update set total = job_run_totals.total + excluded.total;
  if cardinality(ids) > 100 then
    perform steward_runs_publish_ids(ids);
  else
    perform steward_runs_publish(array(select n::job_runs from after_update n where n.id = any(ids) order by n.id));
  end if;
  return null;
end $$;

create trigger job_runs_inserted after insert on job_runs
  referencing new table as inserted
  for each statement execute function steward_runs_inserted();

create trigger job_runs_updated after update on job_runs
  referencing old table as before_update new table as after_update
  for each statement execute function steward_runs_updated();

-- Schedule health: each schedule's latest success and latest failure are one index probe each.
create index job_runs_schedule_outcome on job_runs (schedule, state, id desc)
  where state in ('succeeded', 'failed');

-- "Is a retry of this run queued?" (final-failure alerts); also spares pruning a scan per deleted
-- run for the retry_of foreign key.
create index job_runs_retry_of on job_runs (retry_of) where retry_of is not null;

-- Alerts to deliver to ALERT_WEBHOOK_URL: an outbox. `incident` is unique, so whichever instance
-- notices an incident first records it and the others' inserts do nothing; delivery claims a row
-- with a lease (next_attempt_at) under skip locked, so one instance sends it at a time.
create table alerts (
  id              bigint generated always as identity primary key,
  incident        text not null unique,
  kind            text not null check (kind in ('run_failed', 'schedule_late', 'schedule_recovered')),
  schedule        text,
  run_id          bigint,
  payload         jsonb not null,
  created_at      timestamptz not null default now(),
  -- For schedule_late: set once, by the instance that records the recovery.
  resolved_at     timestamptz,
  attempts        integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  sent_at         timestamptz,
  gave_up_at      timestamptz,
  last_error      text
);

create index alerts_pending on alerts (next_attempt_at) where sent_at is null and gave_up_at is null;
create index alerts_open_late on alerts (schedule) where kind = 'schedule_late' and resolved_at is null;
