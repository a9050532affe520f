/**
 * Every statement on the `jobs` table (migrations/0005_create_jobs.sql). All
 * times come from the injected clock, never from the database's now(), so that
 * tests drive due-ness with a ManualClock and replicas agree on one timeline.
 */
import { newId, type Clock } from '@airlock/domain';
import type { Queryable } from '@airlock/db';

export type JobPayload = Record<string, unknown>;

export interface ScheduleJobInput {
  /** Dotted kind, e.g. `grant.expire`; selects the handler. */
  readonly kind: string;
  /** JSON-serialisable; keep it to ids, never secrets (it is stored in clear). */
  readonly payload: JobPayload;
  readonly runAt: Date;
  /**
   * At most one live (scheduled or dispatched) job exists per key; scheduling
   * again with a live key is a no-op that returns the existing job's id.
   */
  readonly dedupeKey?: string;
  readonly maxAttempts?: number;
}

export const DEFAULT_MAX_ATTEMPTS = 8;
/** Mirrors the table's check constraints, so a bad call fails with a clear message. */
const KIND_PATTERN = /^[a-z_]+(\.[a-z_]+)+$/;
const MAX_ATTEMPTS_LIMIT = 100;
const LAST_ERROR_MAX_CHARS = 1000;

export function isValidJobKind(kind: string): boolean {
  return KIND_PATTERN.test(kind);
}

/**
 * Schedules a job. Run it on the caller's transaction client so the job exists
 * if and only if the change that caused it commits (transactional outbox).
 */
export async function scheduleJob(
  db: Queryable,
  job: ScheduleJobInput,
  clock: Clock,
): Promise<string> {
  if (!isValidJobKind(job.kind))
    throw new TypeError(`Job kind ${JSON.stringify(job.kind)} must look like "area.action"`);
  if (Number.isNaN(job.runAt.getTime())) throw new TypeError('Job runAt is not a valid date');
  const maxAttempts = job.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS_LIMIT) {
    throw new TypeError(`Job maxAttempts must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT}`);
  }
  const payloadJson = JSON.stringify(job.payload);
  const dedupeKey = job.dedupeKey ?? null;

  // The live job holding the key can finish between our insert and select;
  // then the key is free and the next insert wins, so a few rounds suffice.
  for (let round = 0; round < 3; round++) {
    const inserted = await db.query<{ id: string }>(
      `insert into jobs (id, kind, payload, run_at, state, attempts, max_attempts, dedupe_key, created_at)
       values ($1, $2, $3::jsonb, $4, 'scheduled', 0, $5, $6, $7)
       on conflict (dedupe_key) where dedupe_key is not null and state in ('scheduled', 'dispatched')
       do nothing
       returning id`,
      [newId('job'), job.kind, payloadJson, job.runAt, maxAttempts, dedupeKey, clock.now()],
    );
    const insertedId = inserted.rows[0]?.id;
    if (insertedId !== undefined) return insertedId;
    const existing = await db.query<{ id: string }>(
      `select id from jobs where dedupe_key = $1 and state in ('scheduled', 'dispatched')`,
      [dedupeKey],
    );
    const existingId = existing.rows[0]?.id;
    if (existingId !== undefined) return existingId;
  }
  throw new Error(`Could not schedule job ${job.kind}: dedupe key kept changing hands`);
}

/** Cancels live jobs with these keys; returns how many were cancelled. */
export async function cancelJobs(db: Queryable, dedupeKeys: readonly string[]): Promise<number> {
  if (dedupeKeys.length === 0) return 0;
  // finished_at stays null: it records when a worker finished, and a cancelled
  // job was stopped, not finished. A handler already running is not
  // interrupted; its outcome is then discarded (see markDone).
  const result = await db.query(
    `update jobs set state = 'cancelled'
     where dedupe_key = any($1::text[]) and state in ('scheduled', 'dispatched')`,
    [dedupeKeys],
  );
  return result.rowCount ?? 0;
}

/**
 * One dispatch of one job. `attempt` is the value of `attempts` the claim set;
 * every later write is conditional on it, so a stale delivery (an old BullMQ
 * message, a worker that outlived its lease) can never overwrite a newer one.
 */
export interface DispatchRef {
  readonly id: string;
  readonly kind: string;
  readonly attempt: number;
}

export interface ClaimOptions {
  readonly now: Date;
  readonly leaseMs: number;
  readonly limit: number;
}

/**
 * Claims due jobs in one statement: scheduled ones whose time has come, and
 * dispatched ones whose lease expired (their worker died or hung). `skip locked`
 * lets any number of replicas claim at once without ever claiming the same row.
 */
export async function claimDueJobs(db: Queryable, options: ClaimOptions): Promise<DispatchRef[]> {
  const leaseCutoff = new Date(options.now.getTime() - options.leaseMs);
  // A job whose last allowed attempt outlived its lease is not run again:
  // a job that kills its worker every time must not loop forever.
  await db.query(
    `update jobs set state = 'failed', finished_at = $1,
       last_error = 'the last attempt did not finish within its lease (worker stopped, or the handler ran longer than the lease)'
     where state = 'dispatched' and dispatched_at < $2 and attempts >= max_attempts`,
    [options.now, leaseCutoff],
  );
  const claimed = await db.query<DispatchRef>(
    `with due as (
       select id from jobs
       where (state = 'scheduled' and run_at <= $1)
          or (state = 'dispatched' and dispatched_at < $2 and attempts < max_attempts)
       order by run_at, id
       limit $3
       for update skip locked
     )
     update jobs set state = 'dispatched', attempts = jobs.attempts + 1, dispatched_at = $1
     from due where jobs.id = due.id
     returning jobs.id, jobs.kind, jobs.attempts as attempt`,
    [options.now, leaseCutoff, options.limit],
  );
  return claimed.rows;
}

/**
 * Gives claimed jobs back when they could not be handed to a worker (Redis
 * down, runner closing), as if never claimed: the attempt did not happen.
 */
export async function releaseClaims(db: Queryable, refs: readonly DispatchRef[]): Promise<number> {
  if (refs.length === 0) return 0;
  const result = await db.query(
    `update jobs set state = 'scheduled', attempts = jobs.attempts - 1, dispatched_at = null
     from unnest($1::text[], $2::int[]) as released(id, attempt)
     where jobs.id = released.id and jobs.attempts = released.attempt and jobs.state = 'dispatched'`,
    [refs.map((r) => r.id), refs.map((r) => r.attempt)],
  );
  return result.rowCount ?? 0;
}

export interface StartedJob {
  readonly kind: string;
  readonly payload: JobPayload;
  readonly maxAttempts: number;
}

/**
 * Confirms a delivery is current and restarts its lease from the moment the
 * handler actually starts (time spent waiting in a queue does not count).
 * Returns undefined for a stale or cancelled delivery, which must not run.
 */
export async function startAttempt(
  db: Queryable,
  ref: DispatchRef,
  now: Date,
): Promise<StartedJob | undefined> {
  const result = await db.query<{ kind: string; payload: JobPayload; max_attempts: number }>(
    `update jobs set dispatched_at = $3
     where id = $1 and attempts = $2 and state = 'dispatched'
     returning kind, payload, max_attempts`,
    [ref.id, ref.attempt, now],
  );
  const row = result.rows[0];
  return row === undefined
    ? undefined
    : { kind: row.kind, payload: row.payload, maxAttempts: row.max_attempts };
}

export async function markDone(db: Queryable, ref: DispatchRef, now: Date): Promise<boolean> {
  const result = await db.query(
    `update jobs set state = 'done', finished_at = $3, last_error = null
     where id = $1 and attempts = $2 and state = 'dispatched'`,
    [ref.id, ref.attempt, now],
  );
  return result.rowCount === 1;
}

export async function markRetry(
  db: Queryable,
  ref: DispatchRef,
  runAt: Date,
  error: string,
): Promise<boolean> {
  const result = await db.query(
    `update jobs set state = 'scheduled', run_at = $3, dispatched_at = null, last_error = $4
     where id = $1 and attempts = $2 and state = 'dispatched'`,
    [ref.id, ref.attempt, runAt, truncateError(error)],
  );
  return result.rowCount === 1;
}

export async function markFailed(
  db: Queryable,
  ref: DispatchRef,
  now: Date,
  error: string,
): Promise<boolean> {
  const result = await db.query(
    `update jobs set state = 'failed', finished_at = $3, last_error = $4
     where id = $1 and attempts = $2 and state = 'dispatched'`,
    [ref.id, ref.attempt, now, truncateError(error)],
  );
  return result.rowCount === 1;
}

/** Of these dispatches, the ones still running (or still waiting for a worker). */
export async function unfinishedDispatches(
  db: Queryable,
  refs: readonly DispatchRef[],
): Promise<string[]> {
  if (refs.length === 0) return [];
  const result = await db.query<{ id: string }>(
    `select jobs.id from jobs
     join unnest($1::text[], $2::int[]) as pending(id, attempt)
       on jobs.id = pending.id and jobs.attempts = pending.attempt
     where jobs.state = 'dispatched'`,
    [refs.map((r) => r.id), refs.map((r) => r.attempt)],
  );
  return result.rows.map((r) => r.id);
}

function truncateError(message: string): string {
  return message.length <= LAST_ERROR_MAX_CHARS
    ? message
    : `${message.slice(0, LAST_ERROR_MAX_CHARS - 1)}…`;
}
