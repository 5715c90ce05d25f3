-- Backups that survive the loss of the machine: the roles of the server in each set (scope
-- globals), files encrypted with age, an off-site copy in object storage with its upload state, and
-- the size anomaly found when the set was written. A row lives while either copy does: local
-- retention may remove the file once the off-site copy is uploaded, and off-site retention removes
-- the row once neither copy is left.
alter table backups
  add column scope              text not null default 'database' check (scope in ('database', 'globals')),
  add column encrypted          boolean not null default false,
  -- false once the file in BACKUP_DIR is gone (retention, DELETE ?copy=local); the off-site copy stays.
  add column local              boolean not null default true,
  -- null: no remote was configured when the set was made.
  add column remote_state       text check (remote_state in ('pending', 'uploaded', 'failed')),
  add column remote_key         text,
  add column remote_uploaded_at timestamptz,
  add column remote_error       text,
  -- {reason, bytes, medianBytes}: far smaller or larger than the previous sets of the same database.
  add column anomaly            jsonb,
  add constraint backups_has_a_copy check (local or remote_state = 'uploaded');

-- Sets still to upload, oldest first (later runs and start-up).
create index backups_remote_pending on backups (id) where remote_state in ('pending', 'failed');

alter table alerts drop constraint alerts_kind_check;
alter table alerts add constraint alerts_kind_check
  check (kind in ('run_failed', 'schedule_late', 'schedule_recovered', 'drill_failed', 'backup_anomaly'));
