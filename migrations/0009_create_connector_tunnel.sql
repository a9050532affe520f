-- Zone connector tunnel: replay protection for connector assertions, the URL
-- each broker replica advertises to connectors, and the connector that
-- carried a session (known only once the session dials its asset).

create table connector_assertions (
  jti text constraint connector_assertions_pk primary key
    constraint connector_assertions_jti_length check (length(jti) between 16 and 64),
  connector_id text not null constraint connector_assertions_connector_fk references connectors (id),
  expires_at timestamptz not null
);
comment on table connector_assertions is
  'The jti of every accepted connector assertion until it expires: a replayed assertion hits the primary key on any replica.';
create index connector_assertions_expires_ix on connector_assertions (expires_at);

alter table broker_instances add column http_url text
  constraint broker_instances_http_url_format check (http_url ~ '^https?://');
comment on column broker_instances.http_url is
  'Base URL connectors use to reach this replica; connectors keep a control link to every live replica.';

alter table connectors add constraint connectors_enrolled_has_key
  check ((enrolled_at is null) = (public_key is null));

-- sessions.connector_id may be set once, when the session first reaches its
-- asset through a connector; every other identity column stays immutable.
drop trigger sessions_immutable on sessions;
create trigger sessions_immutable before update on sessions
  for each row execute function airlock_immutable_columns(
    'id', 'grant_id', 'user_id', 'asset_id', 'zone_id', 'protocol', 'client_address', 'started_at');

create function airlock_sessions_connector_set_once() returns trigger
language plpgsql as $$
begin
  if old.connector_id is not null and new.connector_id is distinct from old.connector_id then
    raise exception 'airlock: column sessions.connector_id is immutable once set'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
comment on function airlock_sessions_connector_set_once() is
  'Trigger function: sessions.connector_id goes from null to a connector once and never changes again.';
create trigger sessions_connector_set_once before update on sessions
  for each row execute function airlock_sessions_connector_set_once();
