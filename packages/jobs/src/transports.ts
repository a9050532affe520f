/**
 * A transport only carries "run dispatch X" from the claiming runner to some
 * worker. It holds no state of record: PostgreSQL does. Whatever a transport
 * loses (a crash, a flushed Redis) the lease in the jobs table recovers.
 */
import { EventEmitter } from 'node:events';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { DispatchRef } from './repository.js';

export type TransportName = 'bullmq' | 'in-process';

/** Runs one dispatch to completion; never rejects (outcomes go to the table). */
export type ExecuteDispatch = (ref: DispatchRef) => Promise<void>;

export interface RunnerLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface JobTransport {
  readonly name: TransportName;
  /** Starts consuming; `execute` runs each delivered dispatch. Idempotent. */
  start(execute: ExecuteDispatch): Promise<void>;
  /** Hands dispatches to workers; rejects if they could not all be handed over. */
  send(refs: readonly DispatchRef[]): Promise<void>;
  /** How many more dispatches the poll loop should claim for this transport now. */
  capacity(): Promise<number>;
  /**
   * Stops consuming and waits for running dispatches. Returns the dispatches
   * that were accepted but never started, for the runner to give back.
   */
  close(): Promise<DispatchRef[]>;
}

/** Single-node transport: a bounded FIFO in memory. */
export class InProcessTransport implements JobTransport {
  readonly name = 'in-process' as const;
  readonly #concurrency: number;
  readonly #log: RunnerLog;
  readonly #waiting: DispatchRef[] = [];
  readonly #running = new Set<Promise<void>>();
  #execute: ExecuteDispatch | undefined;
  #closed = false;

  constructor(options: { concurrency: number; log: RunnerLog }) {
    this.#concurrency = options.concurrency;
    this.#log = options.log;
  }

  start(execute: ExecuteDispatch): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('The in-process job transport is closed'));
    this.#execute ??= execute;
    this.#pump();
    return Promise.resolve();
  }

  send(refs: readonly DispatchRef[]): Promise<void> {
    if (this.#closed || this.#execute === undefined) {
      return Promise.reject(new Error('The in-process job transport is not running'));
    }
    this.#waiting.push(...refs);
    this.#pump();
    return Promise.resolve();
  }

  capacity(): Promise<number> {
    return Promise.resolve(
      Math.max(0, this.#concurrency - this.#running.size - this.#waiting.length),
    );
  }

  async close(): Promise<DispatchRef[]> {
    this.#closed = true;
    const neverStarted = this.#waiting.splice(0);
    await Promise.all(this.#running);
    return neverStarted;
  }

  #pump(): void {
    const execute = this.#execute;
    if (execute === undefined) return;
    while (!this.#closed && this.#running.size < this.#concurrency) {
      const ref = this.#waiting.shift();
      if (ref === undefined) return;
      const running: Promise<void> = execute(ref)
        .catch((err: unknown) => this.#log.error({ err, jobId: ref.id }, 'job execution crashed'))
        .finally(() => {
          this.#running.delete(running);
          this.#pump();
        });
      this.#running.add(running);
    }
  }
}

interface DispatchMessage {
  readonly jobId: string;
  readonly attempt: number;
}

/** Bounds how long a tick waits for Redis, so a Redis outage delays jobs but never wedges the poll loop. */
const REDIS_WAIT_MS = 5_000;
/**
 * After close, ioredis keeps a socket that is still connecting (Redis
 * unreachable) open this long, holding the process open; its default is 2 s.
 */
const REDIS_DISCONNECT_TIMEOUT_MS = 200;

/**
 * Multi-replica transport: due jobs travel through a BullMQ queue so any
 * replica's worker can run them. BullMQ's own delays, retries and stalled-job
 * recovery are all off: timing comes from the injected clock via PostgreSQL,
 * retries and crash recovery from the jobs table, so there is one source of truth.
 */
export class BullMqTransport implements JobTransport {
  readonly name = 'bullmq' as const;
  readonly #redisUrl: string;
  readonly #queueName: string;
  readonly #concurrency: number;
  readonly #batchSize: number;
  readonly #log: RunnerLog;
  /**
   * The producer side's connection is ours, not BullMQ's: queue operations are
   * issued only while it is ready, so none is ever left pending on a connection
   * that never came up (such leftovers surfaced as stray rejections at close).
   */
  #queueRedis: Redis | undefined;
  #queue: Queue<DispatchMessage> | undefined;
  #worker: Worker<DispatchMessage> | undefined;
  #lastRedisError = '';
  /** Pending waits for Redis to come back; close() ends them at once. */
  readonly #abortWaits = new Set<(err: Error) => void>();
  #closed = false;

  constructor(options: {
    redisUrl: string;
    queueName: string;
    concurrency: number;
    batchSize: number;
    log: RunnerLog;
  }) {
    this.#redisUrl = options.redisUrl;
    this.#queueName = options.queueName;
    this.#concurrency = options.concurrency;
    this.#batchSize = options.batchSize;
    this.#log = options.log;
  }

  /** Options for every connection: BullMQ's reconnect curve, but no reconnecting once closed. */
  #redisOptions(): RedisOptions {
    return {
      disconnectTimeout: REDIS_DISCONNECT_TIMEOUT_MS,
      retryStrategy: (times: number) =>
        this.#closed ? null : Math.max(Math.min(Math.exp(times), 20_000), 1_000),
    };
  }

  start(execute: ExecuteDispatch): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('The BullMQ job transport is closed'));
    if (this.#worker !== undefined) return Promise.resolve();

    const queueRedis = new Redis(this.#redisUrl, {
      ...this.#redisOptions(),
      // Fail at once while disconnected instead of queueing commands in memory;
      // the jobs stay 'scheduled' in PostgreSQL, which is the better queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    queueRedis.on('error', (err: Error) => {
      this.#lastRedisError = err.message;
      this.#log.warn({ err: err.message, queue: this.#queueName }, 'job queue Redis error');
    });
    this.#queueRedis = queueRedis;
    const queue = new Queue<DispatchMessage>(this.#queueName, { connection: queueRedis });
    queue.on('error', (err) =>
      this.#log.warn({ err: describeError(err), queue: this.#queueName }, 'job queue error'),
    );
    this.#queue = queue;

    const worker = new Worker<DispatchMessage>(
      this.#queueName,
      async (job: Job<DispatchMessage>) => {
        const ref = refFromMessage(job);
        if (ref === undefined) {
          this.#log.warn({ bullJobId: job.id }, 'ignoring a malformed job message');
          return;
        }
        await execute(ref);
      },
      {
        connection: { url: this.#redisUrl, ...this.#redisOptions() },
        concurrency: this.#concurrency,
        // No stalled-job recovery in BullMQ: a stalled message must not be
        // re-delivered under the same attempt number while its first worker may
        // still be running it; the lease in the jobs table re-dispatches it
        // under a new attempt instead. (Skipping the checker also avoids a
        // BullMQ 5.81 race where closing with Redis down re-arms its 30 s timer
        // after close(), holding the process open.) A crashed worker's message
        // stays in Redis's active list, a few bytes per crash.
        skipStalledCheck: true,
        maxStalledCount: 0,
      },
    );
    // Without a listener an 'error' event would throw; Redis outages are
    // logged and ioredis keeps reconnecting.
    worker.on('error', (err) =>
      this.#log.warn({ err: describeError(err), queue: this.#queueName }, 'job worker Redis error'),
    );
    this.#worker = worker;
    for (const connection of bullMqConnections(queue, worker)) {
      absorbErrorsAfterClose(connection, this.#log, this.#queueName);
    }
    // Not waiting for Redis here: with Redis down the broker still starts,
    // jobs stay 'scheduled' in PostgreSQL, and the worker connects when it can.
    return Promise.resolve();
  }

  async send(refs: readonly DispatchRef[]): Promise<void> {
    if (refs.length === 0) return;
    const queue = await this.#readyQueue();
    const add = queue.addBulk(
      refs.map((ref) => ({
        name: ref.kind,
        data: { jobId: ref.id, attempt: ref.attempt },
        // BullMQ rejects custom ids with exactly one ':' ("Custom Id cannot
        // contain :"), hence '-'. The attempt in the id makes re-sending the
        // same dispatch a no-op while a new attempt gets a message of its own.
        opts: { jobId: `${ref.id}-${ref.attempt}`, removeOnComplete: true, removeOnFail: true },
      })),
    );
    await withTimeout(
      add,
      REDIS_WAIT_MS,
      `Redis did not accept ${refs.length} job message(s) within ${REDIS_WAIT_MS} ms`,
    );
  }

  async capacity(): Promise<number> {
    const queue = await this.#readyQueue();
    // Keep at most one batch waiting in Redis across all replicas: a longer
    // backlog would sit out its lease and be dispatched again for nothing.
    const waiting = await withTimeout(
      queue.getWaitingCount(),
      REDIS_WAIT_MS,
      `Redis did not report the queue length within ${REDIS_WAIT_MS} ms`,
    );
    return Math.max(0, this.#batchSize - waiting);
  }

  async close(): Promise<DispatchRef[]> {
    this.#closed = true;
    for (const abort of [...this.#abortWaits])
      abort(new Error('The BullMQ job transport was closed'));
    // Messages not yet taken stay in Redis for another replica (or the next
    // start); the worker waits for the handlers it is running.
    const closing: Promise<void>[] = [];
    if (this.#worker !== undefined) closing.push(this.#worker.close());
    if (this.#queue !== undefined) closing.push(this.#queue.close());
    const results = await Promise.allSettled(closing);
    for (const result of results) {
      if (result.status === 'rejected') {
        this.#log.warn({ err: describeError(result.reason) }, 'closing the job queue failed');
      }
    }
    // BullMQ leaves a connection it was handed open; the error listener stays
    // attached so that nothing it reports after this point goes unhandled.
    this.#queueRedis?.disconnect();
    return [];
  }

  /** The queue once its connection is ready; waits at most REDIS_WAIT_MS for a reconnect. */
  async #readyQueue(): Promise<Queue<DispatchMessage>> {
    const redis = this.#queueRedis;
    const queue = this.#queue;
    if (this.#closed || redis === undefined || queue === undefined) {
      throw new Error('The BullMQ job transport is not running');
    }
    if (redis.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const settle = (err?: Error): void => {
          clearTimeout(timer);
          redis.off('ready', onReady);
          this.#abortWaits.delete(settle);
          if (err === undefined) resolve();
          else reject(err);
        };
        const onReady = (): void => settle();
        const timer = setTimeout(() => {
          const reason = this.#lastRedisError === '' ? redis.status : this.#lastRedisError;
          settle(new Error(`Redis is not reachable (${reason})`));
        }, REDIS_WAIT_MS);
        timer.unref();
        redis.once('ready', onReady);
        this.#abortWaits.add(settle);
      });
    }
    return queue;
  }
}

/** The RedisConnection objects BullMQ keeps (protected members, hence the casts). */
function bullMqConnections(queue: Queue, worker: Worker): unknown[] {
  const q = queue as unknown as { connection?: unknown };
  const w = worker as unknown as { connection?: unknown; blockingConnection?: unknown };
  return [q.connection, w.connection, w.blockingConnection];
}

/**
 * BullMQ 5.81 race: a connection closed while its connect attempt is still in
 * flight fails its init() afterwards and re-emits that as 'error' although
 * close() already removed every listener; EventEmitter then throws, and the
 * throw surfaces as an unhandled rejection (fatal under Node's default mode).
 * An error nobody listens for any more is logged instead.
 */
function absorbErrorsAfterClose(connection: unknown, log: RunnerLog, queueName: string): void {
  if (!(connection instanceof EventEmitter)) return;
  const emit = connection.emit.bind(connection);
  connection.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'error' && connection.listenerCount('error') === 0) {
      log.info(
        { err: describeError(args[0]), queue: queueName },
        'Redis error after close ignored',
      );
      return false;
    }
    return emit(event, ...args);
  };
}

function refFromMessage(job: Job<DispatchMessage>): DispatchRef | undefined {
  const data: unknown = job.data;
  if (typeof data !== 'object' || data === null) return undefined;
  const { jobId, attempt } = data as Partial<Record<keyof DispatchMessage, unknown>>;
  if (typeof jobId !== 'string' || typeof attempt !== 'number' || !Number.isInteger(attempt))
    return undefined;
  return { id: jobId, kind: job.name, attempt };
}

/** Settles with `promise` or rejects after `ms`; the late outcome is absorbed, never unhandled. */
function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
