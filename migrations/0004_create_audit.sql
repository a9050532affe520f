-- The audit trail: append-only, hash-chained, with signed checkpoints.

create table audit_events (
  seq bigint constraint audit_events_pk primary key
    constraint audit_events_seq_positive check (seq > 0),
  id text not null constraint audit_events_id_uq unique
    constraint audit_events_id_format check (id ~ '^evt_[0-9a-z]{20}$'),
  occurred_at timestamptz not null,
  type text not null constraint audit_events_type_format check (type ~ '^[a-z_]+(\.[a-z_]+)+$'),
  code text not null,
  actor_kind text not null constraint audit_events_actor_kind_known
    check (actor_kind in ('user', 'system', 'connector', 'anonymous')),
  actor_id text,
  subject_id text,
  source_ip text,
  outcome text not null constraint audit_events_outcome_known check (outcome in ('success', 'failure')),
  data jsonb not null,
  prev_hash text not null constraint audit_events_prev_hash_format check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text not null constraint audit_events_hash_format check (hash ~ '^[0-9a-f]{64}$')
);
comment on table audit_events is
  'Every security-relevant event, in order. Each row carries the previous row''s hash; UPDATE, DELETE and TRUNCATE are refused.';
create index audit_events_type_ix on audit_events (type, seq);
create index audit_events_actor_ix on audit_events (actor_id, seq);
create index audit_events_subject_ix on audit_events (subject_id, seq);
create index audit_events_time_ix on audit_events (occurred_at);

create trigger audit_events_append_only before update or delete on audit_events
  for each row execute function airlock_refuse_change();
create trigger audit_events_no_truncate before truncate on audit_events
  for each statement execute function airlock_refuse_change();

create table audit_checkpoints (
  seq bigint constraint audit_checkpoints_pk primary key,
  head_hash text not null constraint audit_checkpoints_head_hash_format check (head_hash ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null,
  -- Compact JWS (EdDSA) over {seq, headHash, createdAt}; the key is derived from the master key.
  signature text not null
);
comment on table audit_checkpoints is
  'Signed statements of the chain head: removing events from the tail is detected against the latest checkpoint.';

create trigger audit_checkpoints_append_only before update or delete on audit_checkpoints
  for each row execute function airlock_refuse_change();
create trigger audit_checkpoints_no_truncate before truncate on audit_checkpoints
  for each statement execute function airlock_refuse_change();
