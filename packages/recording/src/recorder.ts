import { EventEmitter } from 'node:events';
import type { Clock } from '@airlock/domain';
import { chunkHash, RECORDING_GENESIS_HASH, type StoredChunk } from './chain.js';
import { FRAME_HEADER_BYTES, isChunkKind, writeFrameHeader, type ChunkKind } from './frames.js';
import type { ChunkSink } from './repository.js';

export const DEFAULT_FLUSH_INTERVAL_MS = 50;
export const DEFAULT_MAX_CHUNK_BYTES = 32 * 1024;
export const DEFAULT_HIGH_WATER_MARK = 4 * 1024 * 1024;
/**
 * Sealed bytes worth a write of their own. Below this, sealed chunks wait for
 * more (at most until the flush timer, or a flush()), so that a bulk transfer
 * is written in few large transactions instead of alternating tiny and large
 * ones: every write pays a commit (a WAL flush), whatever its size.
 */
export const DEFAULT_MIN_WRITE_BYTES = 512 * 1024;

/**
 * Caps on one sink write. Writes are sequential, so while one is in flight the
 * next batch grows; the caps keep a recorder whose caller ignores backpressure
 * from building one enormous INSERT.
 */
const MAX_WRITE_CHUNKS = 1_024;
const MAX_WRITE_BYTES = 8 * 1024 * 1024;

const INT4_MAX = 2 ** 31 - 1;

/**
 * The most unused memory a sealed chunk's buffer keeps after its bytes; one
 * with more is trimmed into an exact copy (and a sink moving chunks to another
 * thread relies on this bound to tell a chunk's own memory from a shared one).
 */
export const MAX_CHUNK_SLACK_BYTES = 1024;
/** A chunk's first buffer when its first event is small (a keystroke, a prompt). */
const SMALL_CHUNK_BYTES = 4096;
/** An event at least this large starts its chunk at full size (bulk output). */
const BULK_EVENT_BYTES = 4096;
const EMPTY = Buffer.alloc(0);

export interface SessionRecorderOptions {
  sessionId: string;
  sink: ChunkSink;
  clock: Clock;
  /** The session's start; frame offsets are measured from it. */
  startedAt: Date;
  /** Longest time an event waits in an open chunk before it is sealed and written. */
  flushIntervalMs?: number;
  /** Encoded size at which a chunk is sealed; output and input are split to fit. */
  maxChunkBytes?: number;
  /** Unwritten bytes above which record() returns false (see SessionRecorder). */
  highWaterMark?: number;
  /** Sealed bytes that start a write before the flush timer does (see DEFAULT_MIN_WRITE_BYTES). */
  minWriteBytes?: number;
}

/**
 * The recorder can no longer make the recording durable. The session must end
 * (reason `audit_failure`): continuing would leave it unrecorded, which
 * DESIGN invariant 2 forbids.
 */
export class RecordingFailedError extends Error {
  readonly sessionId: string;

  constructor(sessionId: string, cause: unknown) {
    super(
      `Recording of session ${sessionId} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'RecordingFailedError';
    this.sessionId = sessionId;
  }
}

/** A chunk still taking frames. */
interface OpenChunk {
  readonly key: string;
  readonly channel: number;
  readonly kind: ChunkKind;
  readonly offsetMs: number;
  lastOffsetMs: number;
  buf: Buffer;
  used: number;
}

interface FlushWaiter {
  seq: number;
  resolve: () => void;
  reject: (err: RecordingFailedError) => void;
}

function positiveInteger(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min)
    throw new RangeError(`${name} must be an integer of at least ${min}, not ${value}`);
  return value;
}

/**
 * Records one session: coalesces events per (channel, kind) into chunks,
 * hash-chains them and writes them through the sink, strictly in seq order
 * with one write in flight at a time.
 *
 * A chunk is sealed when it reaches maxChunkBytes or at the latest
 * flushIntervalMs after it opened, so output reaches the database with bounded
 * lag. Nothing is ever dropped: when unwritten bytes exceed highWaterMark,
 * record() returns false and the caller must stop reading from the asset until
 * 'drain' — the session slows down instead of going unrecorded (DESIGN
 * invariant 2).
 *
 * A sink failure is final: 'error' is emitted once (when anyone listens; the
 * state is also visible through `failed`, record() and flush()), and every later
 * record() throws and flush()/close() reject with RecordingFailedError, so the
 * gateway fails closed.
 *
 * Order: replay merges a channel's chunks by (frame offset, chunk seq). To make
 * that reproduce the order events were recorded in, chunks of one channel are
 * sealed (and so numbered) in the order they were opened, and a chunk is sealed
 * early when appending to it would place an event behind one recorded earlier
 * in the same millisecond in a newer chunk. As a consequence a channel's chunk
 * offsets never decrease with seq, which lets asciicastLines merge in one pass.
 *
 * Events: 'drain' (backpressure released), 'error' (RecordingFailedError).
 */
export class SessionRecorder extends EventEmitter {
  readonly sessionId: string;
  readonly #sink: ChunkSink;
  readonly #clock: Clock;
  readonly #startMs: number;
  readonly #flushIntervalMs: number;
  readonly #maxChunkBytes: number;
  readonly #highWaterMark: number;
  readonly #minWriteBytes: number;

  /** Insertion order is opening order, which sealing follows. */
  readonly #open = new Map<string, OpenChunk>();
  #sealed: StoredChunk[] = [];
  #sealedBytes = 0;
  #writing = false;
  #nextSeq = 1;
  #head = RECORDING_GENESIS_HASH;
  #durableSeq = 0;
  #durableHead = RECORDING_GENESIS_HASH;
  #unanswered: { chunks: number; head: string } | null = null;
  #pendingBytes = 0;
  #lastOffsetMs = 0;
  #timer: NodeJS.Timeout | null = null;
  #needDrain = false;
  #failure: RecordingFailedError | null = null;
  #closed = false;
  #waiters: FlushWaiter[] = [];

  constructor(options: SessionRecorderOptions) {
    super();
    if (typeof options.sessionId !== 'string' || options.sessionId === '')
      throw new TypeError('sessionId must be a non-empty string');
    const startMs = options.startedAt instanceof Date ? options.startedAt.getTime() : NaN;
    if (!Number.isFinite(startMs)) throw new TypeError('startedAt must be a valid Date');
    const flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    if (!Number.isFinite(flushIntervalMs) || flushIntervalMs <= 0 || flushIntervalMs > INT4_MAX)
      throw new RangeError(
        `flushIntervalMs must be a positive number of ms, not ${flushIntervalMs}`,
      );
    this.sessionId = options.sessionId;
    this.#sink = options.sink;
    this.#clock = options.clock;
    this.#startMs = startMs;
    this.#flushIntervalMs = flushIntervalMs;
    // Room for a header and at least one byte of data in every chunk.
    this.#maxChunkBytes = positiveInteger(
      'maxChunkBytes',
      options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES,
      2 * FRAME_HEADER_BYTES,
    );
    this.#highWaterMark = positiveInteger(
      'highWaterMark',
      options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      1,
    );
    this.#minWriteBytes = positiveInteger(
      'minWriteBytes',
      options.minWriteBytes ?? Math.min(DEFAULT_MIN_WRITE_BYTES, this.#highWaterMark),
      1,
    );
  }

  /** Encoded bytes recorded but not yet durable (open, sealed or being written). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  get failed(): boolean {
    return this.#failure !== null;
  }

  /** close() was called: record() refuses every event from then on. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Chunks sealed so far (the seq of the newest) and the hash at the head of the chain. */
  get head(): { chunks: number; hash: string } {
    return { chunks: this.#nextSeq - 1, hash: this.#head };
  }

  /**
   * Records one event at the current time. Returns false when the caller must
   * pause reading until 'drain'. The bytes are copied, so the caller may reuse
   * `data`. Throws RecordingFailedError once the recorder has failed.
   */
  record(channel: number, kind: ChunkKind, data: Buffer): boolean {
    if (this.#failure !== null) throw this.#failure;
    if (this.#closed) throw new Error(`The recorder of session ${this.sessionId} is closed`);
    if (!Number.isInteger(channel) || channel < 0 || channel > INT4_MAX)
      throw new RangeError(`channel must be a non-negative 32-bit integer, not ${channel}`);
    if (!isChunkKind(kind)) throw new TypeError(`unknown recording kind ${String(kind)}`);
    if (!Buffer.isBuffer(data)) throw new TypeError('recorded data must be a Buffer');

    const offsetMs = this.#offsetNow();
    const sealedBefore = this.#sealed.length;
    this.#append(channel, kind, offsetMs, data);
    if (this.#open.size > 0 || this.#sealed.length > 0) this.#armTimer();
    if (this.#sealed.length !== sealedBefore) this.#pump(false);

    if (this.#pendingBytes > this.#highWaterMark) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Seals every open chunk and resolves once everything recorded so far is
   * durable. The gateway awaits this before forwarding a command (write-ahead
   * audit) and at session end.
   */
  flush(): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    this.#sealAll();
    this.#pump(true);
    const seq = this.#nextSeq - 1;
    if (this.#durableSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ seq, resolve, reject });
    });
  }

  /**
   * What is durable so far: the number of chunks written and the hash of the
   * last of them. After a failure this is the recording's true extent, and
   * what the session's record must seal (its chunks verify up to here).
   */
  get durable(): { chunks: number; head: string | null } {
    return {
      chunks: this.#durableSeq,
      head: this.#durableSeq === 0 ? null : this.#durableHead,
    };
  }

  /**
   * After a failed write: where the chain ends if that write landed after all
   * (it can commit and its answer be lost). The stored extent of a failed
   * recording is `durable` or this, nothing else.
   */
  get unanswered(): { chunks: number; head: string } | null {
    return this.#unanswered;
  }

  /** Flushes and stops; later record() calls throw. Returns what to store as the session's recording head. */
  async close(): Promise<{ chunks: number; head: string }> {
    this.#closed = true;
    this.#clearTimer();
    await this.flush();
    return { chunks: this.#nextSeq - 1, head: this.#head };
  }

  /**
   * Milliseconds since the session started, by the injected clock. Never
   * decreases (a wall clock stepped backwards must not reorder the
   * recording) and never goes below zero.
   */
  #offsetNow(): number {
    const raw = Math.floor(this.#clock.now().getTime() - this.#startMs);
    const offset = Math.max(raw, this.#lastOffsetMs);
    if (!(offset <= INT4_MAX))
      throw new RangeError(
        `session ${this.sessionId} is older than a recording offset can express`,
      );
    this.#lastOffsetMs = offset;
    return offset;
  }

  #append(channel: number, kind: ChunkKind, offsetMs: number, data: Buffer): void {
    // Output and input are byte streams and may be cut anywhere (replay decodes
    // UTF-8 across frames); a resize or marker is one message and stays whole,
    // even if it alone exceeds maxChunkBytes.
    const splittable = kind === 'o' || kind === 'i';
    let rest = data;
    for (;;) {
      const chunk = this.#chunkFor(channel, kind, offsetMs);
      const room = this.#maxChunkBytes - chunk.used - FRAME_HEADER_BYTES;
      const needed = splittable ? Math.min(rest.length, 1) : rest.length;
      if (room < needed && chunk.used > 0) {
        this.#seal(chunk);
        continue;
      }
      const take = splittable ? Math.min(rest.length, room) : rest.length;
      this.#reserve(chunk, FRAME_HEADER_BYTES + take, rest.length);
      writeFrameHeader(chunk.buf, chunk.used, offsetMs - chunk.offsetMs, take);
      rest.copy(chunk.buf, chunk.used + FRAME_HEADER_BYTES, 0, take);
      chunk.used += FRAME_HEADER_BYTES + take;
      chunk.lastOffsetMs = offsetMs;
      this.#pendingBytes += FRAME_HEADER_BYTES + take;
      rest = rest.subarray(take);
      if (chunk.used + FRAME_HEADER_BYTES >= this.#maxChunkBytes) this.#seal(chunk);
      if (rest.length === 0) return;
    }
  }

  /** The open chunk for (channel, kind), opening one when needed. */
  #chunkFor(channel: number, kind: ChunkKind, offsetMs: number): OpenChunk {
    const key = `${channel}/${kind}`;
    const existing = this.#open.get(key);
    if (existing !== undefined && !this.#newerChunkHasInstant(existing, offsetMs)) return existing;
    if (existing !== undefined) this.#seal(existing);
    const chunk: OpenChunk = {
      key,
      channel,
      kind,
      offsetMs,
      lastOffsetMs: offsetMs,
      buf: EMPTY,
      used: 0,
    };
    this.#open.set(key, chunk);
    return chunk;
  }

  /**
   * Whether a chunk of the same channel opened after `chunk` already holds an
   * event at `offsetMs`. Appending to `chunk` would then sort this event before
   * that one on replay (same offset, lower seq), so `chunk` is sealed instead.
   */
  #newerChunkHasInstant(chunk: OpenChunk, offsetMs: number): boolean {
    let after = false;
    for (const other of this.#open.values()) {
      if (other === chunk) after = true;
      else if (after && other.channel === chunk.channel && other.lastOffsetMs === offsetMs)
        return true;
    }
    return false;
  }

  /**
   * Room for `bytes` more in the chunk's buffer. A chunk's first buffer is
   * small for keystroke-sized events and whole (maxChunkBytes) when the first
   * event is bulk-sized, so a bulk stream fills each chunk without growing it.
   * Buffers are allocUnsafeSlow: each chunk owns its memory, never a slice of
   * Node's shared pool (a sink may take it, see ChunkSink).
   */
  #reserve(chunk: OpenChunk, bytes: number, incoming: number): void {
    const needed = chunk.used + bytes;
    if (needed <= chunk.buf.length) return;
    const size =
      chunk.buf.length === 0 && incoming >= BULK_EVENT_BYTES
        ? this.#maxChunkBytes
        : Math.min(this.#maxChunkBytes, Math.max(SMALL_CHUNK_BYTES, chunk.buf.length * 2));
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, size));
    chunk.buf.copy(grown, 0, 0, chunk.used);
    chunk.buf = grown;
  }

  /** Seals `target`, after every chunk of its channel that was opened before it (see the class comment). */
  #seal(target: OpenChunk): void {
    for (const chunk of this.#open.values()) {
      if (chunk === target) break;
      if (chunk.channel === target.channel) this.#sealOne(chunk);
    }
    this.#sealOne(target);
  }

  #sealAll(): void {
    for (const chunk of this.#open.values()) this.#sealOne(chunk);
  }

  #sealOne(chunk: OpenChunk): void {
    this.#open.delete(chunk.key);
    // Trim a mostly empty buffer so a backlog of small chunks does not pin 4 KiB each
    // (into memory of its own, like every chunk's: see #reserve).
    let data = chunk.buf.subarray(0, chunk.used);
    if (chunk.buf.length - chunk.used > MAX_CHUNK_SLACK_BYTES) {
      data = Buffer.allocUnsafeSlow(chunk.used);
      chunk.buf.copy(data, 0, 0, chunk.used);
    }
    const content = {
      sessionId: this.sessionId,
      seq: this.#nextSeq,
      channel: chunk.channel,
      kind: chunk.kind,
      offsetMs: chunk.offsetMs,
      data,
    };
    const hash = chunkHash(this.#head, content);
    this.#sealed.push({ ...content, prevHash: this.#head, hash });
    this.#sealedBytes += data.length;
    this.#head = hash;
    this.#nextSeq += 1;
  }

  #armTimer(): void {
    if (this.#timer !== null || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#failure !== null) return;
      this.#sealAll();
      this.#pump(true);
    }, this.#flushIntervalMs);
    // A recorder must not keep a process alive on its own; the session's sockets do.
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer === null) return;
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * Starts the next write unless one is in flight: one at a time keeps the
   * rows in seq order. Unless forced (flush timer, flush()), waits until
   * enough is sealed to be worth a commit; the armed timer bounds the wait.
   */
  #pump(force: boolean): void {
    if (this.#writing || this.#failure !== null || this.#sealed.length === 0) return;
    if (!force && this.#sealedBytes < this.#minWriteBytes) return;
    let count = 0;
    let bytes = 0;
    for (const chunk of this.#sealed) {
      if (count > 0 && (count >= MAX_WRITE_CHUNKS || bytes + chunk.data.length > MAX_WRITE_BYTES))
        break;
      count += 1;
      bytes += chunk.data.length;
    }
    const batch = this.#sealed.slice(0, count);
    this.#sealed = this.#sealed.slice(count);
    this.#sealedBytes -= bytes;
    this.#writing = true;
    // Only the last chunk's place in the chain is kept for when the write lands, not
    // the batch: its bytes are the sink's from here on (see ChunkSink).
    const { seq, hash } = batch[batch.length - 1] ?? {
      seq: this.#durableSeq,
      hash: this.#durableHead,
    };
    let written: Promise<void>;
    try {
      written = this.#sink.write(batch);
    } catch (err) {
      // A sink that throws instead of rejecting fails the same way, later, like any write.
      written = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    void written.then(
      () => this.#written(seq, hash, bytes),
      (err: unknown) => {
        if (this.#failure === null) this.#unanswered = { chunks: seq, head: hash };
        this.#fail(err);
      },
    );
  }

  #written(seq: number, hash: string, bytes: number): void {
    this.#writing = false;
    if (this.#failure !== null) return;
    this.#durableSeq = seq;
    this.#durableHead = hash;
    this.#pendingBytes -= bytes;
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiting) {
      if (waiter.seq <= this.#durableSeq) waiter.resolve();
      else this.#waiters.push(waiter);
    }
    // Somebody waits for durability (a command, the session's end): no batching then.
    this.#pump(this.#waiters.length > 0 || this.#closed);
    if (this.#sealed.length > 0) this.#armTimer();
    if (this.#needDrain && this.#pendingBytes <= this.#highWaterMark / 2) {
      // Half the mark, as hysteresis: resuming at the mark itself would pause and
      // resume the asset's stream on every write.
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  #fail(cause: unknown): void {
    this.#writing = false;
    if (this.#failure !== null) return;
    const failure = new RecordingFailedError(this.sessionId, cause);
    this.#failure = failure;
    this.#clearTimer();
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiting) waiter.reject(failure);
    // An 'error' event nobody listens to would throw here and crash every
    // session on this replica; the failure stays visible through record() and flush().
    if (this.listenerCount('error') > 0) this.emit('error', failure);
  }
}
