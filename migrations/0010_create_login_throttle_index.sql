-- Failures are forgotten a day after the last one (FAILURE_MEMORY_MS); each
-- recorded failure removes a few forgotten rows, found by this index.
create index login_throttle_last_failure_ix on login_throttle (last_failure_at);
