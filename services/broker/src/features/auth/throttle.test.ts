/**
 * The sign-in throttle forgets: a count a day old starts afresh, and rows
 * nobody failed on for a day go, a few with every new failure, so guessing
 * usernames cannot grow the table without bound.
 */
import { createTestDatabase, type TestDatabase } from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILURE_MEMORY_MS, recordLoginFailure } from './repository.js';

let db: TestDatabase;
const policy = { threshold: 5, lockoutMs: 15 * 60_000 };
const now = new Date('2026-12-07T12:00:00Z');
const longAgo = new Date(now.getTime() - FAILURE_MEMORY_MS - 60_000);

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function rows(): Promise<Map<string, number>> {
  const { rows: all } = await db.pool.query<{ username: string; failures: number }>(
    'select username, failures from login_throttle',
  );
  return new Map(all.map((r) => [r.username, r.failures]));
}

describe('login throttle', () => {
  it('starts a count afresh once its last failure is forgotten, and locks within the memory', async () => {
    for (let i = 0; i < 4; i += 1) await recordLoginFailure(db.pool, 'olga', longAgo, policy);
    const fresh = await recordLoginFailure(db.pool, 'olga', now, policy);
    expect(fresh).toEqual({ failures: 1, lockedUntil: null });
    let state = fresh;
    for (let i = 0; i < 4; i += 1) state = await recordLoginFailure(db.pool, 'olga', now, policy);
    expect(state.failures).toBe(5);
    expect(state.lockedUntil?.getTime()).toBe(now.getTime() + policy.lockoutMs);
  });

  it('removes forgotten rows as new failures come, keeping live counts and running locks', async () => {
    await db.pool.query('delete from login_throttle');
    await db.pool.query(
      `insert into login_throttle (username, failures, last_failure_at, locked_until)
       select 'guess-' || n, 1, $1, null from generate_series(1, 100) as n`,
      [longAgo],
    );
    const recent = new Date(now.getTime() - 60_000);
    await db.pool.query(
      `insert into login_throttle (username, failures, last_failure_at, locked_until)
       values ('counting', 2, $1, null), ('locked', 5, $2, $3)`,
      [recent, longAgo, new Date(now.getTime() + 60_000)],
    );
    await recordLoginFailure(db.pool, 'newcomer', now, policy);
    expect((await rows()).size).toBe(100 - 64 + 3);
    await recordLoginFailure(db.pool, 'newcomer', now, policy);
    const left = await rows();
    expect([...left.keys()].sort()).toEqual(['counting', 'locked', 'newcomer']);
    expect(left.get('counting')).toBe(2);
    expect(left.get('newcomer')).toBe(2);
  });
});
