-- Paced and chained runs: per-job limits an operator can change, runs that wait for a free slot
-- (and say what for), and chains of steps that follow a successful run.

-- Overrides of a job's built-in limits; a null column means the job's default.
create table job_settings (
  job          text primary key,
  concurrency  integer check (concurrency between 1 and 100),
  max_attempts integer check (max_attempts between 1 and 20),
  timeout_ms   integer check (timeout_ms between 1000 and 86400000),
  updated_at   timestamptz not null default now()
);

alter table job_runs drop constraint job_runs_trigger_check;
alter table job_runs add constraint job_runs_trigger_check
  check (trigger in ('schedule', 'manual', 'retry', 'catch-up', 'chain'));

-- Why a due queued run has not started: 'job concurrency' or 'instance capacity'.
alter table job_runs add column waiting_for text;
-- The run whose success (or stop) led to this chain step.
alter table job_runs add column parent_id bigint references job_runs (id) on delete set null;
-- The steps still to come after this run: [{job, args}], null when none.
alter table job_runs add column "then" jsonb;

create index job_runs_parent on job_runs (parent_id) where parent_id is not null;
-- Running runs per job (the concurrency count) and queued/running runs by job (unique triggers).
create index job_runs_job_active on job_runs (job) where state in ('queued', 'running');

alter table schedules add column "then" jsonb;

-- template-embed follows template-sync: the default schedule gets the chain unless an operator has
-- edited it (an edit or a deletion of a default is kept).
update schedules set "then" = '[{"job": "template-embed", "args": {"missing": true}}]'
where name = 'template-sync' and job = 'template-sync' and updated_at = created_at;

-- GET /events also hears when a queued run starts waiting, or waits for something else.
create or replace function steward_runs_updated() returns trigger language plpgsql as $$
declare
  ids bigint[];
  waiting bigint[];
begin
  ids := array(
    select n.id from after_update n join before_update o on o.id = n.id
    where n.state is distinct from o.state order by n.id);
  waiting := array(
    select n.id from after_update n join before_update o on o.id = n.id
    where n.state = o.state and n.waiting_for is distinct from o.waiting_for and n.waiting_for is not null
    order by n.id);
  if cardinality(ids) > 0 then
    insert into job_run_totals (job, state, total)
    select job, state, count(*) from after_update where id = any(ids) group by job, state order by job, state
    on conflict (job, state) do update set total = job_run_totals.total + excluded.total;
  end if;
  ids := ids || waiting;
  if cardinality(ids) = 0 then
    return null;
  end if;
  if cardinality(ids) > 100 then
    perform steward_runs_publish_ids(ids);
  else
    perform steward_runs_publish(array(select n::job_runs from after_update n where n.id = any(ids) order by n.id));
  end if;
  return null;
end $$;
