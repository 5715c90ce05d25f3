-- Which host's BACKUP_DIR holds a backup's local file (BACKUP_HOST, default the host name). With
-- several instances on several machines, the file stays where the dump ran, but the row is shared:
-- only the instance on that host may read or remove the file; elsewhere a download or restore check
-- uses the off-site copy, and retention leaves the set to its own host. Null for sets written before
-- hosts were recorded: unknown, treated as local by every instance, as they were until now.
alter table backups add column host text;
