import { randomBytes } from 'node:crypto';
import type { StoredChunk } from '../chain.js';
import type { ChunkSink } from '../repository.js';

/** A sink that keeps chunks in memory and checks the recorder's promises: one write at a time, seq order, no gaps. */
export class MemorySink implements ChunkSink {
  readonly chunks: StoredChunk[] = [];
  readonly writes: number[] = [];
  #writing = false;

  async write(chunks: readonly StoredChunk[]): Promise<void> {
    if (this.#writing) throw new Error('MemorySink: concurrent writes');
    this.#writing = true;
    try {
      await Promise.resolve();
      for (const chunk of chunks) {
        if (chunk.seq !== this.chunks.length + 1)
          throw new Error(`MemorySink: got seq ${chunk.seq}, expected ${this.chunks.length + 1}`);
        this.chunks.push(chunk);
      }
      this.writes.push(chunks.length);
    } finally {
      this.#writing = false;
    }
  }
}

interface HeldWrite {
  chunks: readonly StoredChunk[];
  resolve: () => void;
  reject: (err: Error) => void;
}

/** A sink whose writes complete only when the test says so. */
export class ManualSink implements ChunkSink {
  readonly held: HeldWrite[] = [];
  readonly chunks: StoredChunk[] = [];

  write(chunks: readonly StoredChunk[]): Promise<void> {
    if (this.held.length > 0) return Promise.reject(new Error('ManualSink: concurrent writes'));
    return new Promise((resolve, reject) => {
      this.held.push({
        chunks,
        resolve: () => {
          this.chunks.push(...chunks);
          resolve();
        },
        reject,
      });
    });
  }

  /** Completes the write in flight; resolves after the recorder has seen it. */
  async complete(): Promise<readonly StoredChunk[]> {
    const write = this.held.shift();
    if (write === undefined) throw new Error('ManualSink: no write in flight');
    write.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    return write.chunks;
  }

  async fail(err: Error): Promise<void> {
    const write = this.held.shift();
    if (write === undefined) throw new Error('ManualSink: no write in flight');
    write.reject(err);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Deterministic PRNG (mulberry32), so a failing random test can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export function randomPayload(length: number): Buffer {
  return randomBytes(length);
}
