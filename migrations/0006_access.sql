-- Access control and audit. Tokens are stored only as their sha256: a token is 32 random bytes, so a
-- fast hash is enough (nothing to brute-force), and the lookup stays one indexed equality.

create table api_tokens (
  id           bigint generated always as identity primary key,
  name         text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
  role         text not null check (role in ('viewer', 'operator', 'admin')),
  token_hash   bytea not null unique check (length(token_hash) = 32),
  created_at   timestamptz not null default now(),
  created_by   text,
  last_used_at timestamptz,
  revoked_at   timestamptz
);

-- A name is unique among live tokens; a revoked name can be reused.
create unique index api_tokens_live_name on api_tokens (name) where revoked_at is null;

-- Who changed or triggered what. Rows are only ever inserted.
create table audit_log (
  id         bigint generated always as identity primary key,
  at         timestamptz not null default now(),
  actor      text not null,
  action     text not null,
  target     text,
  before     jsonb,
  after      jsonb,
  instance   text
);

create index audit_log_id on audit_log (id desc);
create index audit_log_actor_id on audit_log (actor, id desc);
create index audit_log_action_id on audit_log (action, id desc);
