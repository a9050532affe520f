-- Lifecycle jobs: a transactional outbox. PostgreSQL is the source of truth;
-- Redis (BullMQ) only carries due jobs to workers, so a lost Redis loses no state.

create table jobs (
  id text constraint jobs_pk primary key
    constraint jobs_id_format check (id ~ '^job_[0-9a-z]{20}$'),
  kind text not null constraint jobs_kind_format check (kind ~ '^[a-z_]+(\.[a-z_]+)+$'),
  payload jsonb not null,
  run_at timestamptz not null,
  state text not null
    constraint jobs_state_known check (state in ('scheduled', 'dispatched', 'done', 'failed', 'cancelled')),
  attempts integer not null default 0 constraint jobs_attempts_nonneg check (attempts >= 0),
  max_attempts integer not null constraint jobs_max_attempts_range check (max_attempts between 1 and 100),
  -- At most one live job per key (e.g. 'grant.expire:grt_…'), so scheduling is idempotent.
  dedupe_key text,
  last_error text,
  dispatched_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null
);
comment on table jobs is 'Scheduled lifecycle work (activate, warn, expire, notify), written in the same transaction as the change that causes it.';
create index jobs_due_ix on jobs (run_at) where state in ('scheduled', 'dispatched');
create unique index jobs_dedupe_uq on jobs (dedupe_key) where dedupe_key is not null and state in ('scheduled', 'dispatched');
