import { ManualClock, MINUTE_MS } from '@airlock/domain';
import { withTransaction } from '@airlock/db';
import {
  createTestDatabase,
  testRedisUrl,
  uniqueQueueName,
  type TestDatabase,
} from '@airlock/test-support';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  cancelJobs,
  createJobRunner,
  scheduleJob,
  type JobContext,
  type JobHandler,
  type JobRunner,
  type JobRunnerOptions,
} from './index.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const SECOND_MS = 1_000;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

interface JobRow {
  id: string;
  kind: string;
  state: string;
  attempts: number;
  run_at: Date;
  last_error: string | null;
  dispatched_at: Date | null;
  finished_at: Date | null;
}

async function jobRow(id: string): Promise<JobRow> {
  const result = await db.pool.query<JobRow>('select * from jobs where id = $1', [id]);
  const row = result.rows[0];
  if (row === undefined) throw new Error(`no job ${id}`);
  return row;
}

async function countJobs(where = 'true', params: unknown[] = []): Promise<number> {
  const result = await db.pool.query<{ n: number }>(
    `select count(*)::int as n from jobs where ${where}`,
    params,
  );
  return result.rows[0]?.n ?? 0;
}

/** A handler that records every call, and counts calls per job. */
function recorder(): {
  handler: JobHandler;
  calls: { payload: Record<string, unknown>; ctx: JobContext }[];
  perJob: Map<string, number>;
} {
  const calls: { payload: Record<string, unknown>; ctx: JobContext }[] = [];
  const perJob = new Map<string, number>();
  const handler: JobHandler = (payload, ctx) => {
    calls.push({ payload, ctx });
    perJob.set(ctx.jobId, (perJob.get(ctx.jobId) ?? 0) + 1);
    return Promise.resolve();
  };
  return { handler, calls, perJob };
}

/** Removes a test queue's keys from Redis, so test runs leave nothing behind. */
async function obliterateQueue(name: string): Promise<void> {
  const queue = new Queue(name, { connection: { url: testRedisUrl() } });
  try {
    await queue.obliterate({ force: true });
  } finally {
    await queue.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe.each(['in-process', 'bullmq'] as const)(
  'job runner over the %s transport',
  (transport) => {
    let clock: ManualClock;
    let queueName: string;
    const runners: JobRunner[] = [];

    beforeEach(async () => {
      await db.pool.query('delete from jobs');
      clock = new ManualClock(T0);
      queueName = uniqueQueueName();
    });

    afterEach(async () => {
      await Promise.all(runners.splice(0).map((r) => r.close()));
      if (transport === 'bullmq') await obliterateQueue(queueName);
    });

    function newRunner(
      handlers: JobRunnerOptions['handlers'],
      extra: Partial<JobRunnerOptions> = {},
    ): JobRunner {
      const runner = createJobRunner({
        pool: db.pool,
        clock,
        handlers,
        queueName,
        // testRedisUrl() throws when no Redis is available: the BullMQ variant
        // must fail, never quietly fall back to the in-process transport.
        redisUrl: transport === 'bullmq' ? testRedisUrl() : undefined,
        ...extra,
      });
      runners.push(runner);
      return runner;
    }

    it('uses the transport it was configured for', () => {
      expect(newRunner({}).transport).toBe(transport);
    });

    it('runs a job only once the clock reaches runAt, with its payload and context', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.expire': handler });
      const id = await scheduleJob(
        db.pool,
        {
          kind: 'grant.expire',
          payload: { grantId: 'grt_1' },
          runAt: new Date(T0.getTime() + MINUTE_MS),
        },
        clock,
      );

      expect(await runner.runDue()).toBe(0);
      clock.advance(MINUTE_MS - 1);
      expect(await runner.runDue()).toBe(0);
      expect(calls).toHaveLength(0);
      expect((await jobRow(id)).state).toBe('scheduled');

      clock.advance(1);
      expect(await runner.runDue()).toBe(1);
      expect(calls).toHaveLength(1);
      expect(calls[0]?.payload).toEqual({ grantId: 'grt_1' });
      expect(calls[0]?.ctx).toMatchObject({ jobId: id, kind: 'grant.expire', attempt: 1, clock });
      const row = await jobRow(id);
      expect(row).toMatchObject({ state: 'done', attempts: 1, last_error: null });
      expect(row.finished_at?.toISOString()).toBe(clock.now().toISOString());

      expect(await runner.runDue()).toBe(0);
      expect(calls).toHaveLength(1);
    });

    it('schedules idempotently with a dedupe key while the job is live', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.expire': handler });
      const key = 'grant.expire:grt_1';
      const first = await scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: { n: 1 }, runAt: T0, dedupeKey: key },
        clock,
      );
      const again = await withTransaction(db.pool, (client) =>
        scheduleJob(
          client,
          {
            kind: 'grant.expire',
            payload: { n: 2 },
            runAt: new Date(T0.getTime() + MINUTE_MS),
            dedupeKey: key,
          },
          clock,
        ),
      );
      expect(again).toBe(first);
      expect(await countJobs()).toBe(1);

      expect(await runner.runDue()).toBe(1);
      expect(calls.map((c) => c.payload)).toEqual([{ n: 1 }]);

      // Once the job is no longer live the key is free again.
      const next = await scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: { n: 3 }, runAt: T0, dedupeKey: key },
        clock,
      );
      expect(next).not.toBe(first);
      expect(await runner.runDue()).toBe(1);
      expect(calls.map((c) => c.payload)).toEqual([{ n: 1 }, { n: 3 }]);
    });

    it('never runs cancelled jobs, and frees their keys', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.warn': handler });
      const cancelled = await scheduleJob(
        db.pool,
        { kind: 'grant.warn', payload: { which: 'a' }, runAt: T0, dedupeKey: 'a' },
        clock,
      );
      await scheduleJob(
        db.pool,
        { kind: 'grant.warn', payload: { which: 'b' }, runAt: T0, dedupeKey: 'b' },
        clock,
      );

      expect(await cancelJobs(db.pool, ['a', 'not-a-key'])).toBe(1);
      expect(await cancelJobs(db.pool, ['a'])).toBe(0);
      expect(await cancelJobs(db.pool, [])).toBe(0);

      expect(await runner.runDue()).toBe(1);
      expect(calls.map((c) => c.payload)).toEqual([{ which: 'b' }]);
      expect((await jobRow(cancelled)).state).toBe('cancelled');

      const rescheduled = await scheduleJob(
        db.pool,
        { kind: 'grant.warn', payload: { which: 'a2' }, runAt: T0, dedupeKey: 'a' },
        clock,
      );
      expect(rescheduled).not.toBe(cancelled);
    });

    it('retries a failing handler with exponential backoff, then marks the job failed', async () => {
      const attempts: number[] = [];
      const runner = newRunner({
        'webhook.deliver': (_payload, ctx) => {
          attempts.push(ctx.attempt);
          return Promise.reject(
            new Error(`endpoint down (attempt ${ctx.attempt}) ${'x'.repeat(2_000)}`),
          );
        },
      });
      const id = await scheduleJob(
        db.pool,
        { kind: 'webhook.deliver', payload: {}, runAt: T0, maxAttempts: 3 },
        clock,
      );

      expect(await runner.runDue()).toBe(1);
      let row = await jobRow(id);
      expect(row).toMatchObject({ state: 'scheduled', attempts: 1, dispatched_at: null });
      expect(row.last_error).toMatch(/^endpoint down \(attempt 1\)/);
      expect(row.last_error).toHaveLength(1_000);
      // 5 s ± 20% after the failure.
      let delay = row.run_at.getTime() - clock.now().getTime();
      expect(delay).toBeGreaterThanOrEqual(4 * SECOND_MS);
      expect(delay).toBeLessThanOrEqual(6 * SECOND_MS);

      expect(await runner.runDue()).toBe(0);
      clock.set(row.run_at.getTime() - 1);
      expect(await runner.runDue()).toBe(0);
      clock.set(row.run_at);
      expect(await runner.runDue()).toBe(1);
      row = await jobRow(id);
      expect(row).toMatchObject({ state: 'scheduled', attempts: 2 });
      // Doubled: 10 s ± 20%.
      delay = row.run_at.getTime() - clock.now().getTime();
      expect(delay).toBeGreaterThanOrEqual(8 * SECOND_MS);
      expect(delay).toBeLessThanOrEqual(12 * SECOND_MS);

      clock.set(row.run_at);
      expect(await runner.runDue()).toBe(1);
      row = await jobRow(id);
      expect(row).toMatchObject({ state: 'failed', attempts: 3 });
      expect(row.last_error).toMatch(/^endpoint down \(attempt 3\)/);
      expect(row.finished_at?.toISOString()).toBe(clock.now().toISOString());

      clock.advance(24 * 60 * MINUTE_MS);
      expect(await runner.runDue()).toBe(0);
      expect(attempts).toEqual([1, 2, 3]);
    });

    it('fails a job of a kind no handler knows, with a clear error, without retrying', async () => {
      const runner = newRunner({ 'grant.expire': recorder().handler });
      const id = await scheduleJob(
        db.pool,
        { kind: 'grant.unheard_of', payload: {}, runAt: T0 },
        clock,
      );
      expect(await runner.runDue()).toBe(1);
      const row = await jobRow(id);
      expect(row).toMatchObject({ state: 'failed', attempts: 1 });
      expect(row.last_error).toContain('No handler is registered for job kind "grant.unheard_of"');
    });

    it('never runs a job scheduled inside a transaction that rolled back', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.activate': handler });
      await expect(
        withTransaction(db.pool, async (client) => {
          await scheduleJob(
            client,
            { kind: 'grant.activate', payload: { tx: 'rolled back' }, runAt: T0, dedupeKey: 'k' },
            clock,
          );
          throw new Error('the grant could not be written');
        }),
      ).rejects.toThrow('the grant could not be written');
      await withTransaction(db.pool, (client) =>
        scheduleJob(
          client,
          { kind: 'grant.activate', payload: { tx: 'committed' }, runAt: T0, dedupeKey: 'k' },
          clock,
        ),
      );

      expect(await runner.runDue()).toBe(1);
      expect(calls.map((c) => c.payload)).toEqual([{ tx: 'committed' }]);
      expect(await countJobs()).toBe(1);
    });

    it('runs each job exactly once when two runners share the database', async () => {
      const perJob = new Map<string, number>();
      const handler: JobHandler = async (_payload, ctx) => {
        perJob.set(ctx.jobId, (perJob.get(ctx.jobId) ?? 0) + 1);
        // Keep handlers in flight long enough for the runners to overlap.
        await sleep(Math.floor(Math.random() * 4));
      };
      const options = { concurrency: 3, batchSize: 5, pollIntervalMs: 5 };
      const a = newRunner({ 'session.reap': handler }, options);
      const b = newRunner({ 'session.reap': handler }, options);
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          scheduleJob(db.pool, { kind: 'session.reap', payload: { i }, runAt: T0 }, clock),
        ),
      );

      await Promise.all([a.start(), b.start()]);
      await Promise.all([a.runDue(), b.runDue(), a.runDue(), b.runDue()]);
      await vi.waitFor(async () => expect(await countJobs(`state = 'done'`)).toBe(50), {
        timeout: 10_000,
      });

      expect([...perJob.keys()].sort()).toEqual([...ids].sort());
      expect([...perJob.values()].every((n) => n === 1)).toBe(true);
      expect(await countJobs('attempts = 1')).toBe(50);
    });

    it('runs a dispatched job again once its lease has expired (crashed worker)', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.expire': handler }, { leaseMs: 5 * MINUTE_MS });
      const id = await scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: {}, runAt: T0 },
        clock,
      );
      // A worker claimed it a minute ago and died without a trace.
      await db.pool.query(
        `update jobs set state = 'dispatched', attempts = 1, dispatched_at = $2 where id = $1`,
        [id, new Date(T0.getTime() - MINUTE_MS)],
      );

      expect(await runner.runDue()).toBe(0);
      clock.advance(4 * MINUTE_MS);
      expect(await runner.runDue()).toBe(0);
      expect(calls).toHaveLength(0);

      clock.advance(1);
      expect(await runner.runDue()).toBe(1);
      expect(calls.map((c) => c.ctx.attempt)).toEqual([2]);
      expect(await jobRow(id)).toMatchObject({ state: 'done', attempts: 2 });
    });

    it('fails a job whose last allowed attempt outlived its lease instead of running it forever', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.expire': handler }, { leaseMs: MINUTE_MS });
      const id = await scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: {}, runAt: T0, maxAttempts: 2 },
        clock,
      );
      await db.pool.query(
        `update jobs set state = 'dispatched', attempts = 2, dispatched_at = $2 where id = $1`,
        [id, T0],
      );

      clock.advance(MINUTE_MS + 1);
      expect(await runner.runDue()).toBe(0);
      expect(calls).toHaveLength(0);
      const row = await jobRow(id);
      expect(row.state).toBe('failed');
      expect(row.last_error).toMatch(/lease/);
    });

    it('polls on its own once started', async () => {
      const { handler, calls } = recorder();
      const runner = newRunner({ 'grant.warn': handler }, { pollIntervalMs: 10 });
      await runner.start();
      const now = await scheduleJob(
        db.pool,
        { kind: 'grant.warn', payload: { when: 'now' }, runAt: T0 },
        clock,
      );
      await vi.waitFor(async () => expect((await jobRow(now)).state).toBe('done'));

      const later = await scheduleJob(
        db.pool,
        {
          kind: 'grant.warn',
          payload: { when: 'later' },
          runAt: new Date(T0.getTime() + MINUTE_MS),
        },
        clock,
      );
      await sleep(100);
      expect((await jobRow(later)).state).toBe('scheduled');
      clock.advance(MINUTE_MS);
      await vi.waitFor(async () => expect((await jobRow(later)).state).toBe('done'));
      expect(calls.map((c) => c.payload)).toEqual([{ when: 'now' }, { when: 'later' }]);
    });

    it('loses nothing when a runner is closed mid-way: a new runner finishes the work', async () => {
      const perJob = new Map<string, number>();
      let started = 0;
      let openGate = (): void => undefined;
      const gate = new Promise<void>((resolve) => {
        openGate = resolve;
      });
      const handler: JobHandler = async (_payload, ctx) => {
        perJob.set(ctx.jobId, (perJob.get(ctx.jobId) ?? 0) + 1);
        started += 1;
        if (started <= 2) await gate;
      };
      const dueNow = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          scheduleJob(db.pool, { kind: 'grant.expire', payload: { i }, runAt: T0 }, clock),
        ),
      );
      const dueLater = await Promise.all(
        Array.from({ length: 3 }, (_, i) =>
          scheduleJob(
            db.pool,
            { kind: 'grant.expire', payload: { i }, runAt: new Date(T0.getTime() + MINUTE_MS) },
            clock,
          ),
        ),
      );

      const first = newRunner({ 'grant.expire': handler }, { concurrency: 2 });
      // Observe the outcome at once: it settles while we await close().
      const firstRun = first.runDue().then(
        () => 'resolved',
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      await vi.waitFor(() => expect(started).toBe(2));
      const closing = first.close();
      openGate();
      await closing;
      expect(await firstRun).toMatch(/closed while runDue\(\) was waiting/);

      // The two handlers that were running finished; nothing else ran.
      expect(started).toBe(2);
      expect(await countJobs(`state = 'done'`)).toBe(2);
      expect(await countJobs(`state = 'scheduled' and id = any($1)`, [dueLater])).toBe(3);
      if (transport === 'in-process') {
        // Dispatches that never started were given back, as if never claimed.
        expect(
          await countJobs(`state = 'scheduled' and attempts = 0 and id = any($1)`, [dueNow]),
        ).toBe(4);
      } else {
        // Their messages wait in Redis for the next worker on this queue.
        expect(await countJobs(`state = 'dispatched' and attempts = 1`)).toBe(4);
      }

      const second = newRunner({ 'grant.expire': handler });
      clock.advance(MINUTE_MS);
      await second.runDue();
      await vi.waitFor(async () => expect(await countJobs(`state = 'done'`)).toBe(9), {
        timeout: 10_000,
      });
      expect([...perJob.keys()].sort()).toEqual([...dueNow, ...dueLater].sort());
      expect([...perJob.values()].every((n) => n === 1)).toBe(true);
    });
  },
);

describe('job runner over the bullmq transport, with stale messages', () => {
  it('ignores a message for an attempt that is no longer current', async () => {
    await db.pool.query('delete from jobs');
    const clock = new ManualClock(T0);
    const queueName = uniqueQueueName();
    const { handler, calls } = recorder();
    const runner = createJobRunner({
      pool: db.pool,
      clock,
      handlers: { 'grant.expire': handler },
      redisUrl: testRedisUrl(),
      queueName,
    });
    const queue = new Queue(queueName, { connection: { url: testRedisUrl() } });
    try {
      const id = await scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: {}, runAt: T0 },
        clock,
      );
      // Attempt 1's worker was presumed dead and attempt 2 is now current, but
      // attempt 1's message is still in Redis (e.g. redelivered after a stall).
      await db.pool.query(
        `update jobs set state = 'dispatched', attempts = 2, dispatched_at = $2 where id = $1`,
        [id, T0],
      );
      await runner.start();
      await queue.add(
        'grant.expire',
        { jobId: id, attempt: 1 },
        { jobId: `${id}-1`, removeOnComplete: true, removeOnFail: true },
      );
      await vi.waitFor(async () =>
        expect(await queue.getJobCounts('wait', 'active')).toEqual({ wait: 0, active: 0 }),
      );
      expect(calls).toHaveLength(0);
      expect(await jobRow(id)).toMatchObject({ state: 'dispatched', attempts: 2 });

      await queue.add(
        'grant.expire',
        { jobId: id, attempt: 2 },
        { jobId: `${id}-2`, removeOnComplete: true, removeOnFail: true },
      );
      await vi.waitFor(async () => expect((await jobRow(id)).state).toBe('done'));
      expect(calls.map((c) => c.ctx.attempt)).toEqual([2]);
    } finally {
      await runner.close();
      await queue.close();
      await obliterateQueue(queueName);
    }
  });
});

describe('job runner over the bullmq transport, with Redis unreachable', () => {
  it('keeps jobs in PostgreSQL, logs the Redis errors and still closes promptly', async () => {
    await db.pool.query('delete from jobs');
    const clock = new ManualClock(T0);
    const warnings: string[] = [];
    const log = {
      info: () => undefined,
      warn: (obj: object, msg?: string) => warnings.push(`${msg ?? ''} ${JSON.stringify(obj)}`),
      error: () => undefined,
    };
    const { handler, calls } = recorder();
    // Port 1 refuses connections: Redis is "down".
    const runner = createJobRunner({
      pool: db.pool,
      clock,
      handlers: { 'grant.expire': handler },
      redisUrl: 'redis://127.0.0.1:1',
      queueName: uniqueQueueName(),
      log,
    });
    try {
      await runner.start();
      const id = await scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: {}, runAt: T0 },
        clock,
      );
      await expect(runner.runDue()).rejects.toThrow(/Redis is not reachable .*ECONNREFUSED/);
      // The claim was given back as if never made: no attempt was used up.
      expect(await jobRow(id)).toMatchObject({
        state: 'scheduled',
        attempts: 0,
        dispatched_at: null,
      });
      expect(calls).toHaveLength(0);
      expect(warnings.some((w) => w.includes('ECONNREFUSED'))).toBe(true);
    } finally {
      const started = Date.now();
      await runner.close();
      expect(Date.now() - started).toBeLessThan(1_000);
    }
  });
});

describe('scheduleJob', () => {
  const clock = new ManualClock(T0);

  it('refuses a malformed kind or attempt limit before touching the database', async () => {
    await expect(
      scheduleJob(db.pool, { kind: 'Expire', payload: {}, runAt: T0 }, clock),
    ).rejects.toThrow(/area\.action/);
    await expect(
      scheduleJob(db.pool, { kind: 'grant.expire', payload: {}, runAt: T0, maxAttempts: 0 }, clock),
    ).rejects.toThrow(/maxAttempts/);
    await expect(
      scheduleJob(
        db.pool,
        { kind: 'grant.expire', payload: {}, runAt: new Date(Number.NaN) },
        clock,
      ),
    ).rejects.toThrow(/runAt/);
  });

  it('stores the default attempt limit and the creation time from the clock', async () => {
    const id = await scheduleJob(
      db.pool,
      { kind: 'grant.expire', payload: { a: [1, 2] }, runAt: T0 },
      clock,
    );
    const result = await db.pool.query<{
      max_attempts: number;
      created_at: Date;
      payload: unknown;
    }>('select max_attempts, created_at, payload from jobs where id = $1', [id]);
    expect(result.rows[0]).toEqual({ max_attempts: 8, created_at: T0, payload: { a: [1, 2] } });
  });
});

describe('createJobRunner', () => {
  it('reports every invalid option at once', () => {
    expect(() =>
      createJobRunner({
        pool: db.pool,
        clock: new ManualClock(T0),
        handlers: { expire: recorder().handler },
        concurrency: 0,
        leaseMs: -1,
        queueName: 'a:b',
      }),
    ).toThrow(/leaseMs.*concurrency.*queueName.*handler kind "expire"/);
  });

  it('refuses to run after close()', async () => {
    const runner = createJobRunner({ pool: db.pool, clock: new ManualClock(T0), handlers: {} });
    await runner.close();
    await runner.close();
    await expect(runner.runDue()).rejects.toThrow(/closed/);
    await expect(runner.start()).rejects.toThrow(/closed/);
  });
});
