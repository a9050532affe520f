import { createHash, type Hash } from 'node:crypto';
import type { FileTransferSummary, OpenFlags } from './types.js';

/** Bytes held for out-of-order hashing, shared by every stream of one observer. */
export interface ReorderBudget {
  used: number;
  readonly max: number;
}

/**
 * SHA-256 of a byte stream that arrives as (offset, bytes) pieces, for as long
 * as the pieces tile offsets 0, 1, 2, … without gap or overlap.
 *
 * Pieces usually arrive in order and are hashed at once, never stored. A piece
 * ahead of the next expected offset — a pipelined reply overtaking another, a
 * short read the client asks again for, a write issued before the one before
 * it — waits in a reorder buffer bounded by the shared `ReorderBudget`.
 * Anything that cannot be a single stream (overlap, duplicate offset, a
 * budget overrun) ends hashing for good: the result is then `null` and says
 * so, rather than a hash of something that is not the file.
 */
class ContiguousStreamHasher {
  #hash: Hash | null = createHash('sha256');
  #next = 0;
  readonly #ahead = new Map<number, Buffer>();
  #aheadBytes = 0;
  #pieces = 0;
  bytes = 0;

  constructor(private readonly budget: ReorderBudget) {}

  get pieces(): number {
    return this.#pieces;
  }

  add(offset: number, data: Buffer): void {
    this.#pieces += 1;
    this.bytes += data.length;
    const hash = this.#hash;
    if (hash === null) return;
    if (offset === this.#next) {
      hash.update(data);
      this.#next += data.length;
      for (
        let piece = this.#ahead.get(this.#next);
        piece !== undefined;
        piece = this.#ahead.get(this.#next)
      ) {
        this.#ahead.delete(this.#next);
        this.#release(piece.length);
        hash.update(piece);
        this.#next += piece.length;
      }
      return;
    }
    const fits = this.budget.used + data.length <= this.budget.max;
    if (offset > this.#next && Number.isSafeInteger(offset) && !this.#ahead.has(offset) && fits) {
      // Copied: `data` is a view that would keep a whole input chunk alive.
      this.#ahead.set(offset, Buffer.from(data));
      this.#aheadBytes += data.length;
      this.budget.used += data.length;
      return;
    }
    this.giveUp();
  }

  /** The hex digest if the pieces formed one stream from 0; ends the hasher. */
  finish(): string | null {
    const hash = this.#hash;
    const digest = hash !== null && this.#ahead.size === 0 ? hash.digest('hex') : null;
    this.giveUp();
    return digest;
  }

  giveUp(): void {
    this.#hash = null;
    this.#ahead.clear();
    this.#release(this.#aheadBytes);
  }

  #release(bytes: number): void {
    this.#aheadBytes -= bytes;
    this.budget.used -= bytes;
  }
}

/**
 * What happened to one open file handle (§6.3 OPEN … §6.3 CLOSE): the bytes
 * written by WRITE requests (§6.4), hashed as the requests pass on their way
 * to the server, and the bytes read, hashed as the DATA replies (§7) pass on
 * their way back — streaming, never the whole file in memory.
 */
export class FileTransfer {
  readonly #written: ContiguousStreamHasher;
  readonly #read: ContiguousStreamHasher;
  #readRequests = 0;
  #failed = false;

  constructor(
    readonly path: string,
    readonly flags: OpenFlags,
    readonly openRequestId: number,
    budget: ReorderBudget,
  ) {
    this.#written = new ContiguousStreamHasher(budget);
    this.#read = new ContiguousStreamHasher(budget);
  }

  write(offset: number, data: Buffer): void {
    this.#written.add(offset, data);
  }

  /** The server changed the content by itself (copy-data): the written stream is not what passed here. */
  contentNotObserved(): void {
    this.#written.giveUp();
  }

  readRequested(): void {
    this.#readRequests += 1;
  }

  readReplied(offset: number, data: Buffer): void {
    this.#read.add(offset, data);
  }

  /** A WRITE or READ came back with an error status (§7): the transfer did not do what was hashed. */
  failed(): void {
    this.#failed = true;
  }

  /** Ends the record and releases its buffers. Call once. */
  summary(closeStatus: 'ok' | 'failed' | 'incomplete'): FileTransferSummary {
    const truncated = this.flags.write && this.flags.truncate;
    const uploaded = this.#written.pieces > 0 || truncated;
    const downloaded = this.#readRequests > 0;
    // Null exactly when the pieces did not form one stream from offset 0.
    const writtenDigest = this.#written.finish();
    const readDigest = this.#read.finish();
    return {
      path: this.path,
      direction: uploaded ? (downloaded ? 'both' : 'upload') : downloaded ? 'download' : 'none',
      bytesWritten: this.#written.bytes,
      bytesRead: this.#read.bytes,
      // Without any WRITE, only a truncated file is known to hold the written (empty) stream.
      sha256Written: uploaded ? writtenDigest : null,
      sha256Read: downloaded ? readDigest : null,
      sequential: writtenDigest !== null && readDigest !== null,
      status: closeStatus === 'ok' && this.#failed ? 'failed' : closeStatus,
      openRequestId: this.openRequestId,
      flags: this.flags,
    };
  }
}
