-- Registry: zones and their policy, approvers per zone, assets, connectors.

create table zones (
  id text constraint zones_pk primary key
    constraint zones_id_format check (id ~ '^zon_[0-9a-z]{20}$'),
  name text not null constraint zones_name_uq unique
    constraint zones_name_length check (length(name) between 1 and 200),
  description text constraint zones_description_length check (length(description) <= 2000),
  policy jsonb not null,
  created_at timestamptz not null,
  updated_at timestamptz not null
);
comment on table zones is 'IEC 62443 zones; each holds the policy that governs access to its assets.';

create trigger zones_immutable before update on zones
  for each row execute function airlock_immutable_columns('id', 'created_at');

create table zone_approvers (
  zone_id text not null constraint zone_approvers_zone_fk references zones (id),
  user_id text not null constraint zone_approvers_user_fk references users (id),
  created_at timestamptz not null,
  constraint zone_approvers_pk primary key (zone_id, user_id)
);
comment on table zone_approvers is 'Plant approvers assigned to a zone; only they decide on its requests.';
create index zone_approvers_user_ix on zone_approvers (user_id);

create table assets (
  id text constraint assets_pk primary key
    constraint assets_id_format check (id ~ '^ast_[0-9a-z]{20}$'),
  name text not null constraint assets_name_uq unique
    constraint assets_name_dns_label check (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  zone_id text not null constraint assets_zone_fk references zones (id),
  host text not null constraint assets_host_length check (length(host) between 1 and 253),
  port integer not null constraint assets_port_range check (port between 1 and 65535),
  protocol text not null
    constraint assets_protocol_known check (protocol in ('ssh', 'tcp', 'modbus', 'http', 'rdp', 'vnc')),
  login text constraint assets_login_length check (length(login) <= 100),
  -- Sealed by the vault; never returned by any API (DESIGN invariant 6).
  credential bytea,
  credential_kind text constraint assets_credential_kind_known check (credential_kind in ('password', 'private_key')),
  host_key text,
  forward_ports integer[] not null default '{}',
  description text constraint assets_description_length check (length(description) <= 2000),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  constraint assets_credential_has_kind check ((credential is null) = (credential_kind is null))
);
comment on table assets is 'Endpoints inside a zone: PLCs, HMIs, engineering workstations.';
create index assets_zone_ix on assets (zone_id);

create trigger assets_immutable before update on assets
  for each row execute function airlock_immutable_columns('id', 'created_at');

create table connectors (
  id text constraint connectors_pk primary key
    constraint connectors_id_format check (id ~ '^con_[0-9a-z]{20}$'),
  zone_id text not null constraint connectors_zone_fk references zones (id),
  name text not null,
  -- Only the SHA-256 of the one-time enrollment token is stored.
  enrollment_token_hash text,
  enrollment_expires_at timestamptz,
  enrolled_at timestamptz,
  public_key text,
  status text not null default 'pending'
    constraint connectors_status_known check (status in ('pending', 'online', 'offline', 'disabled')),
  version text,
  address text,
  last_seen_at timestamptz,
  created_at timestamptz not null,
  constraint connectors_zone_name_uq unique (zone_id, name)
);
comment on table connectors is 'Outbound-only agents inside a zone that carry sessions to its assets.';

create trigger connectors_immutable before update on connectors
  for each row execute function airlock_immutable_columns('id', 'zone_id', 'created_at');
