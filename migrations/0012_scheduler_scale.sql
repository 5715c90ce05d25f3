-- Scheduling whose cost follows fires, not schedules (issue 14).
--
-- Each schedule keeps its next unclaimed fire in next_fire_at. Claiming a fire advances it with a
-- compare-and-set, so exactly one instance wins each fire, and a fire nobody claimed is found by an
-- index range scan (next_fire_at in the past) instead of walking every schedule. null: not known yet
-- (a new row written by SQL, an edit of its cron, a schedule re-enabled); the scheduler fills it in.
alter table schedules
  add column next_fire_at timestamptz,
  -- The widest gap between its next few fires, for health; null until computed.
  add column interval_ms bigint,
  -- Its latest outcomes, kept by a trigger on job_runs, so health is one row read, not two probes.
  add column last_success_id bigint,
  add column last_success_at timestamptz,
  add column last_failure_id bigint,
  -- When it becomes late, before its job's timeout is added: the last success or edit plus twice
  -- the interval. Indexed, so finding the late schedules reads only those.
  add column late_at timestamptz;

create index schedules_next_fire on schedules (next_fire_at) where enabled;
create index schedules_late_at on schedules (late_at) where enabled;
-- The few whose next fire or interval is still to be computed.
create index schedules_unknown on schedules (name) where enabled and (next_fire_at is null or interval_ms is null);

-- A change of what or whether it fires drops the stored next fire (and the interval, unless the
-- change sets one), so the scheduler computes them again: edits through the API and by hand in SQL.
-- late_at follows whatever it is computed from.
create function steward_schedule_changed() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE'
     and (new.cron, new.timezone, new.enabled) is distinct from (old.cron, old.timezone, old.enabled) then
    if new.next_fire_at is not distinct from old.next_fire_at then
      new.next_fire_at := null;
    end if;
    if new.interval_ms is not distinct from old.interval_ms then
      new.interval_ms := null;
    end if;
  end if;
  new.late_at := greatest(new.updated_at, new.last_success_at) + 2 * new.interval_ms * interval '1 millisecond';
  return new;
end $$;

create trigger steward_schedule_changed before insert or update on schedules
  for each row execute function steward_schedule_changed();

update schedules s set last_success_id = r.id, last_success_at = r.finished_at
from (select distinct on (schedule) schedule, id, finished_at from job_runs
      where schedule is not null and state = 'succeeded' order by schedule, id desc) r
where r.schedule = s.name;

update schedules s set last_failure_id = r.id
from (select distinct on (schedule) schedule, id from job_runs
      where schedule is not null and state = 'failed' order by schedule, id desc) r
where r.schedule = s.name;

-- Statement triggers, so a bulk insert of finished runs costs one update per schedule, not per row.
-- Rows are locked in name order first: two statements touching the same schedules cannot deadlock.
create function steward_schedule_outcomes() returns trigger language plpgsql as $$
begin
  perform 1 from schedules
  where name in (select schedule from changed where schedule is not null and state in ('succeeded', 'failed'))
  order by name for update;
  update schedules s set last_success_id = x.id, last_success_at = x.finished_at
  from (select distinct on (schedule) schedule, id, finished_at from changed
        where schedule is not null and state = 'succeeded' order by schedule, id desc) x
  where s.name = x.schedule and coalesce(s.last_success_id, 0) < x.id;
  update schedules s set last_failure_id = x.id
  from (select schedule, max(id) as id from changed
        where schedule is not null and state = 'failed' group by schedule) x
  where s.name = x.schedule and coalesce(s.last_failure_id, 0) < x.id;
  return null;
end $$;

create trigger job_runs_schedule_outcomes_inserted after insert on job_runs
  referencing new table as changed
  for each statement execute function steward_schedule_outcomes();

create trigger job_runs_schedule_outcomes_updated after update on job_runs
  referencing new table as changed
  for each statement execute function steward_schedule_outcomes();

-- The instances firing schedules, each seen every few seconds: fires are shared among the live ones.
create table scheduler_instances (
  id         text primary key,
  started_at timestamptz not null default now(),
  seen_at    timestamptz not null default now()
);
