import type { Queryable } from '@airlock/db';

export interface AuthSessionRecord {
  readonly id: string;
  readonly userId: string;
  readonly mfa: boolean;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly revokedAt: Date | null;
}

export async function insertAuthSession(
  db: Queryable,
  s: {
    id: string;
    userId: string;
    mfa: boolean;
    sourceIp: string;
    userAgent: string | null;
    createdAt: Date;
    expiresAt: Date;
  },
): Promise<void> {
  await db.query(
    `insert into auth_sessions (id, user_id, mfa, source_ip, user_agent, created_at, expires_at)
     values ($1, $2, $3, $4, $5, $6, $7)`,
    [s.id, s.userId, s.mfa, s.sourceIp, s.userAgent, s.createdAt, s.expiresAt],
  );
}

export async function findAuthSession(
  db: Queryable,
  id: string,
): Promise<AuthSessionRecord | null> {
  const { rows } = await db.query<{
    id: string;
    user_id: string;
    mfa: boolean;
    created_at: Date;
    expires_at: Date;
    revoked_at: Date | null;
  }>(
    'select id, user_id, mfa, created_at, expires_at, revoked_at from auth_sessions where id = $1',
    [id],
  );
  const r = rows[0];
  return r === undefined
    ? null
    : {
        id: r.id,
        userId: r.user_id,
        mfa: r.mfa,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        revokedAt: r.revoked_at,
      };
}

export async function setAuthSessionMfa(db: Queryable, id: string): Promise<void> {
  await db.query('update auth_sessions set mfa = true where id = $1', [id]);
}

export async function revokeAuthSession(db: Queryable, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    'update auth_sessions set revoked_at = $2 where id = $1 and revoked_at is null',
    [id, now],
  );
  return rowCount === 1;
}

export async function revokeAllAuthSessions(
  db: Queryable,
  userId: string,
  now: Date,
): Promise<number> {
  const { rowCount } = await db.query(
    'update auth_sessions set revoked_at = $2 where user_id = $1 and revoked_at is null',
    [userId, now],
  );
  return rowCount ?? 0;
}

export interface ThrottleState {
  readonly failures: number;
  readonly lockedUntil: Date | null;
}

export async function getThrottle(
  db: Queryable,
  username: string,
  options: { forUpdate?: boolean } = {},
): Promise<ThrottleState | null> {
  const { rows } = await db.query<{ failures: number; locked_until: Date | null }>(
    `select failures, locked_until from login_throttle where username = $1${options.forUpdate === true ? ' for update' : ''}`,
    [username],
  );
  const r = rows[0];
  return r === undefined ? null : { failures: r.failures, lockedUntil: r.locked_until };
}

/**
 * How long failures are remembered after the last one: a count that old
 * starts afresh, and its row may go. (Without a limit every username ever
 * guessed — existing or not — kept a row for good.)
 */
export const FAILURE_MEMORY_MS = 24 * 60 * 60_000;
/** SQL: the row's count no longer counts at `now` (its lock ran out, or its last failure is forgotten). */
const forgotten = (row: string, now: string, memoryMs: string): string =>
  `((${row}.locked_until is not null and ${row}.locked_until <= ${now})
    or (${row}.locked_until is null
        and ${row}.last_failure_at <= ${now}::timestamptz - (${memoryMs} || ' milliseconds')::interval))`;
/** Forgotten rows removed with each failure recorded: the table holds about a day's failures. */
const FORGET_PER_FAILURE = 64;

/**
 * Counts one failure atomically (concurrent guesses cannot slip past the
 * threshold) and locks when the threshold is reached. A lock that has run
 * out, or a count older than FAILURE_MEMORY_MS, starts a fresh count.
 */
export async function recordLoginFailure(
  db: Queryable,
  username: string,
  now: Date,
  policy: { threshold: number; lockoutMs: number },
): Promise<ThrottleState> {
  const { rows } = await db.query<{ failures: number; locked_until: Date | null }>(
    `insert into login_throttle as t (username, failures, last_failure_at, locked_until)
     values ($1, 1, $2, case when 1 >= $3 then $2::timestamptz + ($4 || ' milliseconds')::interval end)
     on conflict (username) do update set
       failures = case when ${forgotten('t', '$2', '$5')} then 1 else t.failures + 1 end,
       last_failure_at = $2,
       locked_until = case
         when (case when ${forgotten('t', '$2', '$5')} then 1 else t.failures + 1 end) >= $3
           then $2::timestamptz + ($4 || ' milliseconds')::interval
         else null end
     returning failures, locked_until`,
    [username, now, policy.threshold, String(policy.lockoutMs), String(FAILURE_MEMORY_MS)],
  );
  const r = rows[0];
  if (r === undefined) throw new Error('login_throttle upsert returned no row');
  await db.query(
    `delete from login_throttle where username in (
       select username from login_throttle as t
        where ${forgotten('t', '$1', '$2')}
        limit ${FORGET_PER_FAILURE}
        -- rows another sign-in holds are left to a later failure: no waiting, no deadlock
        for update skip locked)`,
    [now, String(FAILURE_MEMORY_MS)],
  );
  return { failures: r.failures, lockedUntil: r.locked_until };
}

export async function clearThrottle(db: Queryable, username: string): Promise<void> {
  await db.query('delete from login_throttle where username = $1', [username]);
}
