-- Access lifecycle: requests, approvals, grants.

create table access_requests (
  id text constraint access_requests_pk primary key
    constraint access_requests_id_format check (id ~ '^req_[0-9a-z]{20}$'),
  requester_id text not null constraint access_requests_requester_fk references users (id),
  status text not null
    constraint access_requests_status_known check (status in ('pending', 'approved', 'denied', 'expired', 'cancelled')),
  window_kind text not null constraint access_requests_window_kind_known check (window_kind in ('fixed', 'duration')),
  starts_at timestamptz,
  ends_at timestamptz,
  duration_minutes integer,
  reason text not null constraint access_requests_reason_length check (length(reason) between 1 and 2000),
  ticket text constraint access_requests_ticket_length check (length(ticket) <= 200),
  capabilities text[] not null
    constraint access_requests_capabilities_known
      check (capabilities <@ array['shell', 'exec', 'sftp', 'forward', 'modbus_write']::text[])
    constraint access_requests_capabilities_nonempty check (cardinality(capabilities) > 0),
  created_at timestamptz not null,
  expires_at timestamptz not null,
  decided_at timestamptz,
  decision_reason text,
  constraint access_requests_window_shape check (
    (window_kind = 'fixed' and starts_at is not null and ends_at is not null and ends_at > starts_at
      and duration_minutes is null)
    or (window_kind = 'duration' and starts_at is null and ends_at is null and duration_minutes > 0)
  )
);
comment on table access_requests is 'A vendor asks for named assets, for a window, with a reason.';
create index access_requests_requester_ix on access_requests (requester_id, created_at desc);
create index access_requests_status_ix on access_requests (status, created_at desc);

create trigger access_requests_immutable before update on access_requests
  for each row execute function airlock_immutable_columns(
    'id', 'requester_id', 'window_kind', 'starts_at', 'ends_at', 'duration_minutes',
    'reason', 'ticket', 'capabilities', 'created_at');

create table access_request_assets (
  request_id text not null constraint access_request_assets_request_fk references access_requests (id),
  asset_id text not null constraint access_request_assets_asset_fk references assets (id),
  constraint access_request_assets_pk primary key (request_id, asset_id)
);
comment on table access_request_assets is 'The assets a request names.';

create table access_request_zones (
  request_id text not null constraint access_request_zones_request_fk references access_requests (id),
  zone_id text not null constraint access_request_zones_zone_fk references zones (id),
  -- The quorum is fixed when the request is filed, so a policy edit cannot
  -- change the rules for a request already in flight.
  required_approvals integer not null constraint access_request_zones_required_range check (required_approvals between 1 and 5),
  constraint access_request_zones_pk primary key (request_id, zone_id)
);
comment on table access_request_zones is 'Zones a request touches, each with the quorum it needs.';

create table approvals (
  request_id text not null constraint approvals_request_fk references access_requests (id),
  approver_id text not null constraint approvals_approver_fk references users (id),
  zone_id text not null constraint approvals_zone_fk references zones (id),
  decision text not null constraint approvals_decision_known check (decision in ('approve', 'deny')),
  comment text constraint approvals_comment_length check (length(comment) <= 2000),
  not_before timestamptz,
  not_after timestamptz,
  decided_at timestamptz not null,
  constraint approvals_pk primary key (request_id, approver_id, zone_id)
);
comment on table approvals is
  'One decision per approver per zone of a request; a decision is final, so rows are append-only.';

create trigger approvals_append_only before update or delete on approvals
  for each row execute function airlock_refuse_change();

create table grants (
  id text constraint grants_pk primary key
    constraint grants_id_format check (id ~ '^grt_[0-9a-z]{20}$'),
  request_id text not null constraint grants_request_fk references access_requests (id),
  user_id text not null constraint grants_user_fk references users (id),
  asset_id text not null constraint grants_asset_fk references assets (id),
  zone_id text not null constraint grants_zone_fk references zones (id),
  not_before timestamptz not null,
  not_after timestamptz not null,
  capabilities text[] not null,
  created_at timestamptz not null,
  activated_at timestamptz,
  expired_at timestamptz,
  revoked_at timestamptz,
  revoked_by text constraint grants_revoked_by_fk references users (id),
  revoke_reason text constraint grants_revoke_reason_length check (length(revoke_reason) <= 2000),
  constraint grants_window check (not_after > not_before),
  constraint grants_revocation_complete check ((revoked_at is null) = (revoked_by is null)),
  constraint grants_request_asset_uq unique (request_id, asset_id)
);
comment on table grants is
  'user × asset × [not_before, not_after) × capabilities: what an approved request becomes. Active only inside its window and while not revoked.';
create index grants_user_ix on grants (user_id, not_after);
create index grants_zone_ix on grants (zone_id, not_after);

create trigger grants_immutable before update on grants
  for each row execute function airlock_immutable_columns(
    'id', 'request_id', 'user_id', 'asset_id', 'zone_id', 'not_before', 'not_after', 'capabilities', 'created_at');

create function airlock_grants_revocation_final() returns trigger
language plpgsql as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'airlock: a revoked grant stays revoked' using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
create trigger grants_revocation_final before update on grants
  for each row execute function airlock_grants_revocation_final();
create trigger grants_no_delete before delete on grants
  for each row execute function airlock_refuse_change();
