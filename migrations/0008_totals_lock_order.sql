-- The run-totals triggers (0007) upsert one job_run_totals row per (job, state) a statement touched.
-- Since fires due at the same instant are claimed in one statement, two transactions can touch the
-- same rows; taken in hash-aggregate order they could deadlock. Every transaction now upserts them
-- in (job, state) order.

create or replace function steward_runs_inserted() returns trigger language plpgsql as $$
begin
  insert into job_run_totals (job, state, total)
  select job, state, count(*) from inserted group by job, state order by job, state
  on conflict (job, state) do update set total = job_run_totals.total + excluded.total;
  if (select count(*) from inserted) > 100 then
    perform steward_runs_publish_ids(array(select id from inserted));
  else
    perform steward_runs_publish(array(select i::job_runs from inserted i order by i.id));
  end if;
  return null;
end $$;

create or replace function steward_runs_updated() returns trigger language plpgsql as $$
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
  select job, state, count(*) from after_update where id = any(ids) group by job, state order by job, state
  on conflict (job, state) do update set total = job_run_totals.total + excluded.total;
  if cardinality(ids) > 100 then
    perform steward_runs_publish_ids(ids);
  else
    perform steward_runs_publish(array(select n::job_runs from after_update n where n.id = any(ids) order by n.id));
  end if;
  return null;
end $$;
