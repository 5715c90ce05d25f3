-- Runs you can watch (issue 15): each run's own log, and how far it has got.
--
-- A run's log lines, numbered from 1 in the order the job wrote them. Written in batches by the
-- instance running the job (src/engine/run-log.ts), capped per run, and deleted with their run.
-- No foreign key: its check costs more than the insert itself (measured: 10,000 lines took 286 ms
-- with it, 68 ms without); lines are written only for runs that exist, and a statement trigger
-- deletes them with their runs, however the runs are deleted.
create table run_logs (
  run_id  bigint not null,
  seq     integer not null,
  at      timestamptz not null,
  level   text not null check (level in ('debug', 'info', 'warn', 'error')),
  message text not null,
  fields  jsonb,
  primary key (run_id, seq)
);

create function steward_run_logs_deleted() returns trigger language plpgsql as $$
begin
  delete from run_logs where run_id in (select id from deleted);
  return null;
end $$;

create trigger job_runs_logs_deleted after delete on job_runs
  referencing old table as deleted
  for each statement execute function steward_run_logs_deleted();

-- {done, total, unit, updatedAt} as the job last reported it; null when it reports none.
alter table job_runs add column progress jsonb;

-- Run changes are published (steward_runs) for a new state, a new reason to wait, and now a new
-- progress reading, so live views see a run advance. A progress update is one row, a second apart
-- at most, per running run.
create or replace function steward_runs_updated() returns trigger language plpgsql as $$
declare
  ids bigint[];
  changed bigint[];
begin
  ids := array(
    select n.id from after_update n join before_update o on o.id = n.id
    where n.state is distinct from o.state order by n.id);
  changed := array(
    select n.id from after_update n join before_update o on o.id = n.id
    where n.state = o.state
      and ((n.waiting_for is distinct from o.waiting_for and n.waiting_for is not null)
           or n.progress is distinct from o.progress)
    order by n.id);
  if cardinality(ids) > 0 then
    insert into job_run_totals (job, state, total)
    select job, state, count(*) from after_update where id = any(ids) group by job, state order by job, state
    on conflict (job, state) do update set total = job_run_totals.total + excluded.total;
  end if;
  ids := ids || changed;
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
