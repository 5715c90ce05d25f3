-- Templates: the files under TEMPLATES_DIR as template-sync last saw them, and their embeddings as
-- template-embed computed them.

create table templates (
  id          bigint generated always as identity primary key,
  -- Identity: the path relative to TEMPLATES_DIR, with / separators.
  path        text not null unique,
  name        text not null,
  format      text not null check (format in ('json', 'yaml', 'markdown')),
  -- Front matter (Markdown) or the parsed document without its body field (JSON, YAML).
  metadata    jsonb not null default '{}',
  body        text not null,
  sha256      text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  created_at  timestamptz not null default now(),
  -- Written only when the content changed or a forced sync rewrote the row.
  updated_at  timestamptz not null default now(),
  synced_at   timestamptz not null default now()
);

-- pgvector is optional and absent from the embedded server, so vectors are plain real[]; cosine
-- similarity is computed in SQL over unit-length vectors.
create table template_embeddings (
  template_id    bigint primary key references templates (id) on delete cascade,
  model          text not null,
  dimensions     integer not null check (dimensions > 0),
  -- The templates.sha256 the vector was computed from: it is stale once they differ.
  content_sha256 text not null,
  embedding      real[] not null check (cardinality(embedding) = dimensions),
  embedded_at    timestamptz not null default now()
);

create index template_embeddings_model on template_embeddings (model, dimensions);
