-- Identity: organizations, users, SSH keys, sign-in sessions, login throttling.
-- Style: lowercase SQL, every constraint named, a comment on every table,
-- immutable columns enforced by triggers (see Boundary's SQL style guide).

create function airlock_refuse_change() returns trigger
language plpgsql as $$
begin
  raise exception 'airlock: % on % is not allowed (append-only or immutable)', tg_op, tg_table_name
    using errcode = 'insufficient_privilege';
end;
$$;
comment on function airlock_refuse_change() is
  'Trigger function: refuses UPDATE/DELETE/TRUNCATE on append-only tables.';

create function airlock_immutable_columns() returns trigger
language plpgsql as $$
declare
  col text;
begin
  foreach col in array tg_argv loop
    if to_jsonb(new) -> col is distinct from to_jsonb(old) -> col then
      raise exception 'airlock: column %.% is immutable', tg_table_name, col
        using errcode = 'insufficient_privilege';
    end if;
  end loop;
  return new;
end;
$$;
comment on function airlock_immutable_columns() is
  'Trigger function: refuses an UPDATE that changes any column named in the trigger arguments.';

create table organizations (
  id text constraint organizations_pk primary key
    constraint organizations_id_format check (id ~ '^org_[0-9a-z]{20}$'),
  name text not null constraint organizations_name_uq unique
    constraint organizations_name_length check (length(name) between 1 and 200),
  created_at timestamptz not null
);
comment on table organizations is 'Vendor organizations; every vendor user belongs to one.';

create table users (
  id text constraint users_pk primary key
    constraint users_id_format check (id ~ '^usr_[0-9a-z]{20}$'),
  username text not null
    constraint users_username_format check (username ~ '^[a-z][a-z0-9._-]{0,63}$'),
  display_name text constraint users_display_name_length check (length(display_name) <= 200),
  organization_id text constraint users_organization_fk references organizations (id),
  roles text[] not null
    constraint users_roles_known check (roles <@ array['admin', 'approver', 'auditor', 'vendor']::text[])
    constraint users_roles_nonempty check (cardinality(roles) > 0),
  password_hash text not null,
  -- TOTP secrets are sealed by the vault (AES-256-GCM under the master key).
  totp_secret bytea,
  totp_enabled_at timestamptz,
  totp_pending_secret bytea,
  totp_last_step bigint,
  webhook_url text,
  webhook_secret bytea,
  disabled_at timestamptz,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  constraint users_username_uq unique (username),
  constraint users_vendor_has_organization check (not ('vendor' = any (roles)) or organization_id is not null),
  constraint users_totp_consistent check ((totp_secret is null) = (totp_enabled_at is null))
);
comment on table users is 'People who use Airlock: admins, approvers, auditors and vendors.';

create trigger users_immutable before update on users
  for each row execute function airlock_immutable_columns('id', 'username', 'created_at');

create table ssh_keys (
  id text constraint ssh_keys_pk primary key
    constraint ssh_keys_id_format check (id ~ '^key_[0-9a-z]{20}$'),
  user_id text not null constraint ssh_keys_user_fk references users (id),
  name text not null constraint ssh_keys_name_length check (length(name) between 1 and 100),
  algorithm text not null,
  public_key text not null,
  fingerprint text not null constraint ssh_keys_fingerprint_uq unique,
  created_at timestamptz not null
);
comment on table ssh_keys is 'SSH public keys per user; a fingerprint identifies exactly one user.';
create index ssh_keys_user_ix on ssh_keys (user_id);

create table auth_sessions (
  id text constraint auth_sessions_pk primary key
    constraint auth_sessions_id_format check (id ~ '^aus_[0-9a-z]{20}$'),
  user_id text not null constraint auth_sessions_user_fk references users (id),
  mfa boolean not null,
  source_ip text,
  user_agent text,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  revoked_at timestamptz,
  constraint auth_sessions_window check (expires_at > created_at)
);
comment on table auth_sessions is
  'Sign-in sessions. Access tokens name their session; logout revokes it so the token dies with it.';
create index auth_sessions_user_ix on auth_sessions (user_id);

create table login_throttle (
  username text constraint login_throttle_pk primary key,
  failures integer not null constraint login_throttle_failures_nonneg check (failures >= 0),
  last_failure_at timestamptz not null,
  locked_until timestamptz
);
comment on table login_throttle is
  'Failed sign-ins per username (existing or not, so lockout reveals nothing); IEC 62443-3-3 SR 1.11.';
