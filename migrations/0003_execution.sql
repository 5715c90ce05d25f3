-- Execution guarantees: retries wait in the table until due, running runs heartbeat, and any
-- instance can find queued work and abandoned runs cheaply.

alter table job_runs add column run_after timestamptz;

-- Queued runs in the order they become due (pollers take them with skip locked).
create index job_runs_due on job_runs ((coalesce(run_after, queued_at))) where state = 'queued';

-- Running runs by heartbeat, for the rescuer of abandoned runs.
create index job_runs_heartbeat on job_runs (heartbeat_at) where state = 'running';

-- Finished runs by age, for pruning.
create index job_runs_finished_at on job_runs (finished_at) where finished_at is not null;
