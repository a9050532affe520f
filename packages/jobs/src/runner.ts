import type { Clock } from '@airlock/domain';
import type { Pool } from '@airlock/db';
import { retryDelayMs } from './backoff.js';
import {
  claimDueJobs,
  isValidJobKind,
  markDone,
  markFailed,
  markRetry,
  releaseClaims,
  startAttempt,
  unfinishedDispatches,
  type DispatchRef,
  type JobPayload,
  type StartedJob,
} from './repository.js';
import {
  BullMqTransport,
  describeError,
  InProcessTransport,
  type JobTransport,
  type RunnerLog,
  type TransportName,
} from './transports.js';

export interface JobContext {
  readonly jobId: string;
  readonly kind: string;
  /** 1 on the first run; grows with every retry and every lease expiry. */
  readonly attempt: number;
  readonly clock: Clock;
}

/**
 * Runs one job. Handlers MUST be idempotent: delivery is at least once. A
 * handler can run again after it did its work but before 'done' was recorded
 * (crash, lost database connection), or, if it runs longer than the lease,
 * while its first run is still going. Check the current state before acting
 * (e.g. "expire the grant unless it is already expired").
 */
export type JobHandler = (payload: JobPayload, ctx: JobContext) => Promise<void>;

export interface JobRunnerOptions {
  readonly pool: Pool;
  readonly clock: Clock;
  /** Kind → handler. A job of a kind without a handler fails at once. */
  readonly handlers: Readonly<Record<string, JobHandler>>;
  /** Set: BullMQ transport against this Redis. Unset: in-process transport (single node). */
  readonly redisUrl?: string | undefined;
  readonly queueName?: string;
  readonly pollIntervalMs?: number;
  /**
   * A dispatched job not finished within this is dispatched again (its worker
   * is presumed dead). Must exceed the longest handler run, or a slow handler
   * gets a concurrent twin.
   */
  readonly leaseMs?: number;
  /** Handlers this runner runs at once. */
  readonly concurrency?: number;
  /** Most jobs claimed by one statement. */
  readonly batchSize?: number;
  readonly log?: RunnerLog;
}

export interface JobRunner {
  readonly transport: TransportName;
  /** Starts the worker and the poll loop (an unref'd interval). */
  start(): Promise<void>;
  /**
   * Dispatches every job due by clock.now(), waits until each has finished
   * (done, failed or rescheduled), and repeats until nothing is due. Returns
   * how many dispatches it made. Made for tests driving a ManualClock.
   */
  runDue(): Promise<number>;
  /** Stops polling, waits for running handlers, closes Redis connections. */
  close(): Promise<void>;
}

export const DEFAULT_QUEUE_NAME = 'airlock-jobs';
const DEFAULT_POLL_INTERVAL_MS = 1_000;
const DEFAULT_LEASE_MS = 5 * 60_000;
const DEFAULT_CONCURRENCY = 4;
const DEFAULT_BATCH_SIZE = 100;
/** runDue re-checks the table this often for dispatches another replica runs. */
const FINISH_CHECK_INTERVAL_MS = 25;

const silentLog: RunnerLog = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export function createJobRunner(options: JobRunnerOptions): JobRunner {
  return new PostgresJobRunner(options);
}

function checkOptions(options: JobRunnerOptions): void {
  const problems: string[] = [];
  const positiveInteger = (name: string, value: number | undefined): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1))
      problems.push(`${name} must be a positive integer`);
  };
  positiveInteger('pollIntervalMs', options.pollIntervalMs);
  positiveInteger('leaseMs', options.leaseMs);
  positiveInteger('concurrency', options.concurrency);
  positiveInteger('batchSize', options.batchSize);
  if (options.queueName !== undefined && !/^[A-Za-z0-9_.-]+$/.test(options.queueName)) {
    problems.push('queueName may hold only letters, digits, "_", "." and "-"');
  }
  if (options.redisUrl !== undefined && !/^rediss?:\/\//.test(options.redisUrl)) {
    problems.push('redisUrl must be a redis:// or rediss:// URL');
  }
  for (const kind of Object.keys(options.handlers)) {
    if (!isValidJobKind(kind))
      problems.push(`handler kind ${JSON.stringify(kind)} must look like "area.action"`);
  }
  if (problems.length > 0)
    throw new TypeError(`Invalid job runner options: ${problems.join('; ')}`);
}

class PostgresJobRunner implements JobRunner {
  readonly #pool: Pool;
  readonly #clock: Clock;
  readonly #handlers: ReadonlyMap<string, JobHandler>;
  readonly #transport: JobTransport;
  readonly #pollIntervalMs: number;
  readonly #leaseMs: number;
  readonly #batchSize: number;
  readonly #log: RunnerLog;

  #transportStarting: Promise<void> | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #pollInFlight: Promise<void> | undefined;
  /** Set when the last poll claimed a full batch, so more may be waiting. */
  #moreMayBeDue = false;
  readonly #dispatchesInFlight = new Set<Promise<unknown>>();
  /** Counts finished executions, so runDue never misses a wake-up. */
  #settledCount = 0;
  readonly #settleWaiters = new Set<() => void>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: JobRunnerOptions) {
    checkOptions(options);
    this.#pool = options.pool;
    this.#clock = options.clock;
    this.#handlers = new Map(Object.entries(options.handlers));
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    this.#log = options.log ?? silentLog;
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#transport =
      options.redisUrl === undefined
        ? new InProcessTransport({ concurrency, log: this.#log })
        : new BullMqTransport({
            redisUrl: options.redisUrl,
            queueName: options.queueName ?? DEFAULT_QUEUE_NAME,
            concurrency,
            batchSize: this.#batchSize,
            log: this.#log,
          });
  }

  get transport(): TransportName {
    return this.#transport.name;
  }

  async start(): Promise<void> {
    this.#assertOpen();
    await this.#startTransport();
    if (this.#closed || this.#pollTimer !== undefined) return;
    this.#pollTimer = setInterval(() => this.#poll(), this.#pollIntervalMs);
    // Polling alone must not keep the process alive; the server does.
    this.#pollTimer.unref();
    this.#poll();
  }

  async runDue(): Promise<number> {
    this.#assertOpen();
    await this.#startTransport();
    let dispatched = 0;
    for (;;) {
      const refs = await this.#dispatchDue(this.#batchSize);
      if (refs.length === 0) return dispatched;
      dispatched += refs.length;
      await this.#waitUntilFinished(refs);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    this.#closed = true;
    if (this.#pollTimer !== undefined) clearInterval(this.#pollTimer);
    this.#wakeWaiters();
    // The transport stops first, so that claims under way fail fast and are
    // given back; all of that finishes before close() returns and the pool may go.
    const transportClosed = this.#transport.close();
    await this.#pollInFlight;
    await Promise.allSettled(this.#dispatchesInFlight);
    const neverStarted = await transportClosed;
    if (neverStarted.length > 0) {
      await releaseClaims(this.#pool, neverStarted).catch((err: unknown) =>
        this.#log.warn(
          { err: describeError(err), jobs: neverStarted.length },
          'could not give back unstarted jobs; their lease will',
        ),
      );
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('The job runner is closed');
  }

  #startTransport(): Promise<void> {
    this.#transportStarting ??= this.#transport.start((ref) => this.#execute(ref));
    return this.#transportStarting;
  }

  /** One poll tick; ticks never overlap, so a slow database or Redis cannot pile them up. */
  #poll(): void {
    if (this.#closed || this.#pollInFlight !== undefined) return;
    const tick = this.#pollOnce().finally(() => {
      if (this.#pollInFlight === tick) this.#pollInFlight = undefined;
    });
    this.#pollInFlight = tick;
  }

  async #pollOnce(): Promise<void> {
    try {
      this.#moreMayBeDue = false;
      while (!this.#closed) {
        const limit = Math.min(await this.#transport.capacity(), this.#batchSize);
        if (limit <= 0) {
          this.#moreMayBeDue = true;
          return;
        }
        const refs = await this.#dispatchDue(limit);
        if (refs.length < limit) return;
      }
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'job poll failed; retrying at the next interval');
    }
  }

  /** Claims up to `limit` due jobs and hands them to the transport; gives them back if it cannot. */
  #dispatchDue(limit: number): Promise<DispatchRef[]> {
    const run = (async () => {
      const refs = await claimDueJobs(this.#pool, {
        now: this.#clock.now(),
        leaseMs: this.#leaseMs,
        limit,
      });
      if (refs.length === 0) return refs;
      try {
        await this.#transport.send(refs);
      } catch (err) {
        const released = await releaseClaims(this.#pool, refs).catch(() => 0);
        throw new Error(
          `Could not hand ${refs.length} job(s) to the ${this.#transport.name} transport (${released} given back, the rest recover when their lease ends): ${describeError(err)}`,
          { cause: err },
        );
      }
      return refs;
    })();
    this.#dispatchesInFlight.add(run);
    const forget = (): void => {
      this.#dispatchesInFlight.delete(run);
    };
    run.then(forget, forget);
    return run;
  }

  async #waitUntilFinished(refs: readonly DispatchRef[]): Promise<void> {
    let pending = refs;
    for (;;) {
      if (this.#closed)
        throw new Error('The job runner was closed while runDue() was waiting for jobs');
      const settledBefore = this.#settledCount;
      const unfinished = new Set(await unfinishedDispatches(this.#pool, pending));
      if (unfinished.size === 0) return;
      pending = pending.filter((ref) => unfinished.has(ref.id));
      // Local executions wake us at once; ones on other replicas are seen by re-checking.
      if (this.#settledCount === settledBefore)
        await this.#nextSettleOrTimeout(FINISH_CHECK_INTERVAL_MS);
    }
  }

  #nextSettleOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#settleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#settleWaiters.add(done);
    });
  }

  #wakeWaiters(): void {
    for (const wake of [...this.#settleWaiters]) wake();
  }

  /** Runs one dispatch and records its outcome. Never rejects. */
  async #execute(ref: DispatchRef): Promise<void> {
    try {
      const started = await startAttempt(this.#pool, ref, this.#clock.now());
      if (started === undefined) {
        this.#log.info(
          { jobId: ref.id, attempt: ref.attempt },
          'skipping a stale or cancelled job dispatch',
        );
        return;
      }
      const handler = this.#handlers.get(started.kind);
      if (handler === undefined) {
        await markFailed(
          this.#pool,
          ref,
          this.#clock.now(),
          `No handler is registered for job kind "${started.kind}"`,
        );
        this.#log.error(
          { jobId: ref.id, kind: started.kind },
          'job failed: no handler for its kind',
        );
        return;
      }
      try {
        await handler(started.payload, {
          jobId: ref.id,
          kind: started.kind,
          attempt: ref.attempt,
          clock: this.#clock,
        });
      } catch (err) {
        await this.#recordFailure(ref, started, err);
        return;
      }
      if (!(await markDone(this.#pool, ref, this.#clock.now()))) {
        this.#log.warn(
          { jobId: ref.id, kind: started.kind, attempt: ref.attempt },
          'job ran but was cancelled or re-dispatched meanwhile',
        );
      }
    } catch (err) {
      // The row stays 'dispatched'; the lease brings it back.
      this.#log.error(
        { jobId: ref.id, attempt: ref.attempt, err: describeError(err) },
        'could not record a job outcome',
      );
    } finally {
      this.#settledCount++;
      this.#wakeWaiters();
      // A slot just freed up; refill it now rather than at the next interval.
      // setImmediate lets the transport count the slot as free first.
      if (this.#moreMayBeDue && this.#pollTimer !== undefined) setImmediate(() => this.#poll());
    }
  }

  async #recordFailure(ref: DispatchRef, started: StartedJob, err: unknown): Promise<void> {
    const message = describeError(err) || 'handler failed without a message';
    const fields = {
      jobId: ref.id,
      kind: started.kind,
      attempt: ref.attempt,
      maxAttempts: started.maxAttempts,
      err: message,
    };
    if (ref.attempt < started.maxAttempts) {
      const runAt = new Date(this.#clock.now().getTime() + retryDelayMs(ref.attempt));
      await markRetry(this.#pool, ref, runAt, message);
      this.#log.warn({ ...fields, retryAt: runAt.toISOString() }, 'job failed; will retry');
    } else {
      await markFailed(this.#pool, ref, this.#clock.now(), message);
      this.#log.error(fields, 'job failed for the last time');
    }
  }
}
