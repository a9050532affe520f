/**
 * Recording writes on a thread of their own.
 *
 * Every byte a session carries is recorded, and writing it to PostgreSQL is
 * the heaviest part of carrying it: the pg client copies each chunk into its
 * protocol buffers several times, and a batch lives as long as its commit. On
 * the gateway's event loop that garbage is what a bulk transfer's majors
 * collect — pauses of 10–30 ms that every other session's keystrokes wait for
 * (bench:connector prints them). Here the recorder's sealed chunks move, not
 * copied, to one worker thread with a pg pool of its own; the worker inserts
 * them exactly as pgChunkSink does and answers when they are committed. The
 * gateway's heap never holds them again, so its collector has nothing to do
 * for them.
 *
 * Guarantees are pgChunkSink's: write() resolves only once its chunks are
 * committed, and rejects when they are not — including when the thread dies,
 * which fails every session writing through it (closed, not unrecorded). The
 * next write starts a new thread.
 */
import { Worker } from 'node:worker_threads';
import type { StoredChunk } from './chain.js';
import { MAX_CHUNK_SLACK_BYTES } from './recorder.js';
import type { ChunkSink } from './repository.js';
import type {
  WriterConfig,
  WriterReply,
  WriterRequest,
  WriterRow,
} from './threaded-sink.worker.js';

export interface ThreadedChunkSinkOptions {
  /** The recording database (the broker's). */
  readonly connectionString: string;
  /** Connections of the writer thread's pool: writes of that many sessions commit at once. */
  readonly maxConnections?: number;
  readonly applicationName?: string;
}

interface PendingWrite {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** A write that failed in the writer thread, with PostgreSQL's SQLSTATE when there was one. */
export class RecordingWriteError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = 'RecordingWriteError';
    this.code = code;
  }
}

/**
 * Starts the worker module through tsx, as the broker itself runs: a worker
 * does not inherit the main thread's module hooks.
 */
function workerSource(): URL {
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./threaded-sink.worker.ts', import.meta.url).href;
  const source = `import { register } from ${JSON.stringify(tsx)};\nregister();\nawait import(${JSON.stringify(entry)});\n`;
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}

export class ThreadedChunkSink implements ChunkSink {
  readonly #config: WriterConfig;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, PendingWrite>();
  #nextId = 1;
  #closed = false;
  #onDrained: (() => void) | null = null;

  constructor(options: ThreadedChunkSinkOptions) {
    this.#config = {
      connectionString: options.connectionString,
      maxConnections: options.maxConnections ?? 4,
      applicationName: options.applicationName ?? 'airlock-recording',
    };
  }

  /** Writes not yet answered by the writer thread. */
  get pendingWrites(): number {
    return this.#pending.size;
  }

  write(chunks: readonly StoredChunk[]): Promise<void> {
    if (this.#closed)
      return Promise.reject(new RecordingWriteError('the recording writer is closed'));
    if (chunks.length === 0) return Promise.resolve();
    const rows: WriterRow[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const chunk of chunks) {
      const { data } = chunk;
      const memory = data.buffer;
      // Moved when it is the chunk's own memory, as the recorder's always is (see
      // ChunkSink); anything that may be shared, a slice of Node's pool above all
      // (never its ArrayBuffer's only tenant: far more slack), is copied instead.
      const own =
        memory instanceof ArrayBuffer &&
        data.byteOffset === 0 &&
        memory.byteLength - data.length <= MAX_CHUNK_SLACK_BYTES &&
        !transfer.includes(memory);
      if (own) transfer.push(memory);
      rows.push({
        sessionId: chunk.sessionId,
        seq: chunk.seq,
        channel: chunk.channel,
        kind: chunk.kind,
        offsetMs: chunk.offsetMs,
        prevHash: chunk.prevHash,
        hash: chunk.hash,
        data: { memory, offset: data.byteOffset, length: data.length },
      });
    }
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const request: WriterRequest = { type: 'write', id, rows };
      try {
        worker.postMessage(request, transfer);
      } catch (err) {
        this.#pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Waits for the writes in flight, then ends the thread's connections and the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending.size > 0)
      await new Promise<void>((resolve) => {
        this.#onDrained = resolve;
      });
    const worker = this.#worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const request: WriterRequest = { type: 'close' };
    worker.postMessage(request);
    const timer = setTimeout(() => void worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }

  #settle(id: number, outcome: Error | null): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    if (outcome === null) pending.resolve();
    else pending.reject(outcome);
    if (this.#pending.size === 0) this.#onDrained?.();
  }

  #ensureWorker(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = new Worker(workerSource(), { workerData: this.#config });
    // Sessions keep the process alive, not their recorder's thread.
    worker.unref();
    worker.on('message', (reply: WriterReply) =>
      this.#settle(reply.id, reply.ok ? null : new RecordingWriteError(reply.message, reply.code)),
    );
    const lost = (why: string): void => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      for (const id of [...this.#pending.keys()])
        this.#settle(id, new RecordingWriteError(`the recording writer thread stopped: ${why}`));
    };
    worker.on('error', (err) => lost(err.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    this.#worker = worker;
    return worker;
  }
}
