-- Sessions (one SSH connection under a grant), their recordings and the
-- commands submitted in them.

create table sessions (
  id text constraint sessions_pk primary key
    constraint sessions_id_format check (id ~ '^ses_[0-9a-z]{20}$'),
  grant_id text not null constraint sessions_grant_fk references grants (id),
  user_id text not null constraint sessions_user_fk references users (id),
  asset_id text not null constraint sessions_asset_fk references assets (id),
  zone_id text not null constraint sessions_zone_fk references zones (id),
  connector_id text constraint sessions_connector_fk references connectors (id),
  protocol text not null constraint sessions_protocol_known check (protocol in ('ssh', 'web')),
  client_address text,
  client_version text,
  broker_instance text not null,
  started_at timestamptz not null,
  ended_at timestamptz,
  end_reason text constraint sessions_end_reason_known check (end_reason in (
    'client_exit', 'expired', 'revoked', 'terminated', 'connector_lost', 'broker_shutdown', 'audit_failure', 'idle_timeout', 'asset_unreachable', 'error')),
  end_detail text,
  bytes_from_client bigint not null default 0,
  bytes_to_client bigint not null default 0,
  -- Head of the session's recording chain when it ended (also in the session.end audit event).
  recording_chunks integer not null default 0,
  recording_head text,
  constraint sessions_end_complete check ((ended_at is null) = (end_reason is null))
);
comment on table sessions is 'One vendor connection under a grant: who, from where, to which asset, and how it ended.';
create index sessions_live_ix on sessions (broker_instance) where ended_at is null;
create index sessions_grant_ix on sessions (grant_id) where ended_at is null;
create index sessions_started_ix on sessions (started_at desc);
create index sessions_user_ix on sessions (user_id, started_at desc);

create trigger sessions_immutable before update on sessions
  for each row execute function airlock_immutable_columns(
    'id', 'grant_id', 'user_id', 'asset_id', 'zone_id', 'connector_id', 'protocol', 'client_address', 'started_at');

create function airlock_sessions_end_final() returns trigger
language plpgsql as $$
begin
  if old.ended_at is not null then
    raise exception 'airlock: an ended session is final' using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
create trigger sessions_end_final before update on sessions
  for each row execute function airlock_sessions_end_final();
create trigger sessions_no_delete before delete on sessions
  for each row execute function airlock_refuse_change();

create table session_chunks (
  session_id text not null constraint session_chunks_session_fk references sessions (id),
  seq integer not null constraint session_chunks_seq_positive check (seq > 0),
  channel integer not null,
  -- o: output to the vendor, i: input from the vendor, r: terminal resize ("COLSxROWS"), m: marker (warnings, notices)
  kind text not null constraint session_chunks_kind_known check (kind in ('o', 'i', 'r', 'm')),
  offset_ms integer not null constraint session_chunks_offset_nonneg check (offset_ms >= 0),
  -- Several events coalesced into one row: data is a sequence of (u32 offset delta ms, u32 length, bytes).
  data bytea not null,
  prev_hash text not null constraint session_chunks_prev_hash_format check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text not null constraint session_chunks_hash_format check (hash ~ '^[0-9a-f]{64}$'),
  constraint session_chunks_pk primary key (session_id, seq)
);
comment on table session_chunks is
  'Recording of a session, batched; each chunk carries the previous chunk''s hash. Append-only.';

create trigger session_chunks_append_only before update or delete on session_chunks
  for each row execute function airlock_refuse_change();
create trigger session_chunks_no_truncate before truncate on session_chunks
  for each statement execute function airlock_refuse_change();

create table commands (
  id text constraint commands_pk primary key
    constraint commands_id_format check (id ~ '^cmd_[0-9a-z]{20}$'),
  session_id text not null constraint commands_session_fk references sessions (id),
  user_id text not null constraint commands_user_fk references users (id),
  asset_id text not null constraint commands_asset_fk references assets (id),
  kind text not null constraint commands_kind_known check (kind in ('shell', 'exec', 'sftp', 'scp', 'forward', 'modbus')),
  command text not null,
  occurred_at timestamptz not null,
  offset_ms integer not null,
  outcome text not null constraint commands_outcome_known check (outcome in ('forwarded', 'blocked', 'alerted')),
  rule text,
  details jsonb not null default '{}',
  audit_seq bigint not null
);
comment on table commands is
  'Every line submitted at a shell, exec request, file operation and forwarded connection; durable before it reaches the asset.';
create index commands_session_ix on commands (session_id, occurred_at);
create index commands_time_ix on commands (occurred_at desc);
create index commands_user_ix on commands (user_id, occurred_at desc);
create index commands_asset_ix on commands (asset_id, occurred_at desc);
create index commands_text_ix on commands using gin (to_tsvector('simple', command));

create trigger commands_append_only before update or delete on commands
  for each row execute function airlock_refuse_change();

create table gateway_host_keys (
  algorithm text constraint gateway_host_keys_pk primary key,
  -- Sealed by the vault; every broker replica presents the same host key.
  private_key bytea not null,
  public_key text not null,
  created_at timestamptz not null
);
comment on table gateway_host_keys is 'The SSH gateway''s own host keys, generated once and shared by all replicas.';
