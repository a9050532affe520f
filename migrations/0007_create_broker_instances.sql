-- Broker replicas announce themselves; a replica that stops announcing has
-- crashed, and the sessions it carried are closed by the others.

create table broker_instances (
  id text constraint broker_instances_pk primary key,
  hostname text not null,
  started_at timestamptz not null,
  last_seen_at timestamptz not null,
  stopped_at timestamptz
);
comment on table broker_instances is
  'Running broker replicas and their heartbeat; used to close sessions left open by a replica that crashed.';
