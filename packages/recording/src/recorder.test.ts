import { ManualClock } from '@airlock/domain';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  asciicastLines,
  chunkHash,
  decodeFrames,
  RECORDING_GENESIS_HASH,
  RecordingFailedError,
  SessionRecorder,
  type ChunkKind,
  type ChunkSink,
  type StoredChunk,
} from './index.js';
import { ManualSink, MemorySink, randomPayload, seededRandom } from './testing/memory-sink.js';

const SESSION = 'ses_0123456789abcdefghjk';
const START = new Date('2024-05-01T08:00:00.000Z');

let clock: ManualClock;

beforeEach(() => {
  clock = new ManualClock(START);
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});

afterEach(() => {
  vi.useRealTimers();
});

function recorder(
  sink: ChunkSink,
  options: Partial<ConstructorParameters<typeof SessionRecorder>[0]> = {},
) {
  return new SessionRecorder({ sessionId: SESSION, sink, clock, startedAt: START, ...options });
}

/** Moves the clock and the timers together, as real time would. */
async function elapse(ms: number): Promise<void> {
  clock.advance(ms);
  await vi.advanceTimersByTimeAsync(ms);
}

function framesOf(chunks: readonly StoredChunk[], kind?: ChunkKind, channel = 0) {
  return chunks
    .filter((c) => c.channel === channel && (kind === undefined || c.kind === kind))
    .flatMap((c) => decodeFrames(c.data, c.offsetMs));
}

function expectValidChain(chunks: readonly StoredChunk[]): void {
  let prev = RECORDING_GENESIS_HASH;
  chunks.forEach((c, i) => {
    expect(c.seq).toBe(i + 1);
    expect(c.prevHash).toBe(prev);
    expect(chunkHash(c.prevHash, c)).toBe(c.hash);
    prev = c.hash;
  });
}

describe('SessionRecorder coalescing', () => {
  it('coalesces many small writes into one chunk per flush interval', async () => {
    const sink = new MemorySink();
    const rec = recorder(sink);
    for (let i = 0; i < 100; i++) {
      expect(rec.record(0, 'o', Buffer.from(`line ${i}\r\n`))).toBe(true);
      await elapse(1);
    }
    // 100 writes over 100 ms with a 50 ms interval: two chunks, each written once its interval ran out.
    expect(sink.chunks).toHaveLength(2);
    expect(sink.chunks.map((c) => c.offsetMs)).toEqual([0, 50]);
    expect(framesOf(sink.chunks).map((f) => f.data.toString())).toEqual(
      Array.from({ length: 100 }, (_, i) => `line ${i}\r\n`),
    );
    expect(framesOf(sink.chunks).map((f) => f.offsetMs)).toEqual(
      Array.from({ length: 100 }, (_, i) => i),
    );
    const closed = await rec.close();
    expect(closed).toEqual({ chunks: 2, head: sink.chunks[1]!.hash });
    expectValidChain(sink.chunks);
  });

  it('holds an open chunk until the interval ends (bounded lag), then writes it', async () => {
    const sink = new MemorySink();
    const rec = recorder(sink, { flushIntervalMs: 20 });
    rec.record(0, 'o', Buffer.from('prompt$ '));
    await elapse(19);
    expect(sink.chunks).toHaveLength(0);
    expect(rec.pendingBytes).toBe(8 + 8);
    await elapse(1);
    expect(sink.chunks).toHaveLength(1);
    expect(rec.pendingBytes).toBe(0);
    await rec.close();
  });

  it('splits a big write at maxChunkBytes and keeps every byte', async () => {
    const sink = new MemorySink();
    const rec = recorder(sink, { maxChunkBytes: 32 * 1024 });
    const big = randomPayload(100_000);
    clock.advance(7);
    rec.record(0, 'o', big);
    await rec.flush();
    // Full chunks are exactly maxChunkBytes long (frame header included).
    expect(sink.chunks.map((c) => c.data.length)).toEqual([
      32_768,
      32_768,
      32_768,
      100_000 - 3 * 32_760 + 8,
    ]);
    const frames = framesOf(sink.chunks);
    expect(frames.every((f) => f.offsetMs === 7)).toBe(true);
    expect(Buffer.concat(frames.map((f) => f.data)).equals(big)).toBe(true);
    await rec.close();
  });

  it('keeps a resize or marker whole even when it is larger than a chunk', async () => {
    const sink = new MemorySink();
    const rec = recorder(sink, { maxChunkBytes: 64 });
    const notice = 'Your access ends in 5 minutes. '.repeat(4);
    rec.record(0, 'o', Buffer.from('x'.repeat(40)));
    rec.record(0, 'm', Buffer.from(notice));
    await rec.close();
    const markers = framesOf(sink.chunks, 'm');
    expect(markers.map((f) => f.data.toString())).toEqual([notice]);
  });

  it('flush() seals open chunks and resolves only when they are durable', async () => {
    const sink = new ManualSink();
    const rec = recorder(sink);
    rec.record(0, 'i', Buffer.from('reboot\r'));
    let durable = false;
    const flushed = rec.flush().then(() => {
      durable = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(sink.held).toHaveLength(1);
    expect(durable).toBe(false);
    await sink.complete();
    await flushed;
    expect(durable).toBe(true);
    // Nothing new: resolves at once.
    await rec.flush();
    expect(sink.held).toHaveLength(0);
  });

  it('never lets offsets go backwards when the clock does', async () => {
    const sink = new MemorySink();
    const rec = recorder(sink);
    clock.advance(500);
    rec.record(0, 'o', Buffer.from('a'));
    clock.advance(-300);
    rec.record(0, 'o', Buffer.from('b'));
    clock.set(START.getTime() - 60_000);
    rec.record(0, 'o', Buffer.from('c'));
    await rec.close();
    expect(framesOf(sink.chunks).map((f) => f.offsetMs)).toEqual([500, 500, 500]);
  });
});

describe('SessionRecorder order', () => {
  /**
   * Random interleavings of channels and kinds, many in the same millisecond,
   * with small chunks, timer and explicit flushes: merging each channel's
   * frames by (offset, seq) must give back exactly the order of record()
   * calls, byte for byte — and so must the asciicast export.
   */
  it.each([1, 2, 3, 4, 5])(
    'replays events in recorded order across channels and kinds (seed %i)',
    async (seed) => {
      const random = seededRandom(seed);
      const sink = new MemorySink();
      const rec = recorder(sink, { maxChunkBytes: 48, flushIntervalMs: 10 });
      const kinds: ChunkKind[] = ['o', 'o', 'o', 'i', 'i', 'r', 'm'];
      const recorded = new Map<number, { kind: ChunkKind; text: string }[]>([
        [0, []],
        [1, []],
      ]);
      const flushes: Promise<void>[] = [];
      for (let n = 0; n < 600; n++) {
        const channel = random() < 0.7 ? 0 : 1;
        const kind = kinds[Math.floor(random() * kinds.length)]!;
        const length = kind === 'r' ? 5 : 1 + Math.floor(random() * (random() < 0.1 ? 120 : 12));
        const text = Array.from({ length }, () =>
          String.fromCharCode(97 + Math.floor(random() * 26)),
        ).join('');
        rec.record(channel, kind, Buffer.from(text));
        recorded.get(channel)!.push({ kind, text });
        const step = random();
        if (step < 0.5) continue; // same millisecond
        if (step < 0.95) await elapse(1 + Math.floor(random() * 4));
        else flushes.push(rec.flush());
      }
      await Promise.all(flushes);
      await rec.close();
      expectValidChain(sink.chunks);

      for (const [channel, events] of recorded) {
        const merged = sink.chunks
          .filter((c) => c.channel === channel)
          .flatMap((c) =>
            decodeFrames(c.data, c.offsetMs).map((f, i) => ({ ...f, kind: c.kind, seq: c.seq, i })),
          )
          .sort((a, b) => a.offsetMs - b.offsetMs || a.seq - b.seq || a.i - b.i);
        // Output and input may be split across chunks, so compare as (kind, character) streams.
        const expected = events.flatMap((e) =>
          e.kind === 'o' || e.kind === 'i'
            ? [...e.text].map((ch) => `${e.kind}${ch}`)
            : [`${e.kind}${e.text}`],
        );
        const actual = merged.flatMap((f) => {
          const text = f.data.toString();
          return f.kind === 'o' || f.kind === 'i'
            ? [...text].map((ch) => `${f.kind}${ch}`)
            : [`${f.kind}${text}`];
        });
        expect(actual).toEqual(expected);

        const lines: string[] = [];
        for await (const line of asciicastLines(sink.chunks, {
          channel,
          includeInput: true,
          header: { width: 80, height: 24, startedAt: START },
        }))
          lines.push(line);
        const fromCast = lines.slice(1).flatMap((line) => {
          const [, code, text] = JSON.parse(line) as [number, ChunkKind, string];
          return code === 'o' || code === 'i'
            ? [...text].map((ch) => `${code}${ch}`)
            : [`${code}${text}`];
        });
        expect(fromCast).toEqual(expected);
      }
    },
  );
});

describe('SessionRecorder backpressure', () => {
  it('returns false above the high-water mark, emits drain once written, and loses nothing', async () => {
    const sink = new ManualSink();
    const rec = recorder(sink, { maxChunkBytes: 16 * 1024, highWaterMark: 64 * 1024 });
    const drains: number[] = [];
    rec.on('drain', () => drains.push(rec.pendingBytes));
    const sent: Buffer[] = [];
    let accepted = true;
    let calls = 0;
    while (accepted) {
      const piece = randomPayload(10_000);
      sent.push(piece);
      accepted = rec.record(0, 'o', piece);
      calls += 1;
      expect(calls).toBeLessThan(100);
    }
    expect(rec.pendingBytes).toBeGreaterThan(64 * 1024);
    // One write in flight; the rest waits its turn.
    expect(sink.held).toHaveLength(1);
    expect(drains).toEqual([]);

    while (drains.length === 0) {
      if (sink.held.length === 0)
        await elapse(50); // seals what is still open
      else await sink.complete();
    }
    expect(drains).toHaveLength(1);
    expect(drains[0]).toBeLessThanOrEqual(32 * 1024);
    expect(rec.record(0, 'o', Buffer.from('more'))).toBe(true);
    sent.push(Buffer.from('more'));

    const closing = rec.close();
    while (sink.held.length > 0) await sink.complete();
    await closing;
    expect(
      Buffer.concat(framesOf(sink.chunks).map((f) => f.data)).equals(Buffer.concat(sent)),
    ).toBe(true);
    expectValidChain(sink.chunks);
  });

  it('batches chunks sealed while a write is in flight into the next write', async () => {
    const sink = new ManualSink();
    const rec = recorder(sink, { maxChunkBytes: 1024, minWriteBytes: 1 });
    // 8-byte header + 1016 bytes fills a chunk exactly, so every record() seals one.
    rec.record(0, 'o', randomPayload(1016)); // chunk 1 → write 1
    for (let i = 0; i < 5; i++) rec.record(0, 'o', randomPayload(1016)); // chunks 2..6 wait
    expect(sink.held.map((w) => w.chunks.length)).toEqual([1]);
    const first = await sink.complete();
    expect(first.map((c) => c.seq)).toEqual([1]);
    expect(sink.held[0]!.chunks.map((c) => c.seq)).toEqual([2, 3, 4, 5, 6]);
    await sink.complete();
    await rec.close();
  });

  it('holds sealed chunks for a write worth a commit, at most until the flush timer', async () => {
    const sink = new ManualSink();
    const rec = recorder(sink, { maxChunkBytes: 1024, minWriteBytes: 4096, flushIntervalMs: 50 });
    // Three full chunks (3 KiB) are below the minimum: no write yet.
    for (let i = 0; i < 3; i++) rec.record(0, 'o', randomPayload(1016));
    expect(sink.held).toHaveLength(0);
    // The fourth reaches it: one write of all four.
    rec.record(0, 'o', randomPayload(1016));
    expect(sink.held.map((w) => w.chunks.map((c) => c.seq))).toEqual([[1, 2, 3, 4]]);
    await sink.complete();

    // Below the minimum again: the flush timer bounds the wait.
    rec.record(0, 'o', randomPayload(1016));
    await elapse(49);
    expect(sink.held).toHaveLength(0);
    await elapse(1);
    expect(sink.held.map((w) => w.chunks.map((c) => c.seq))).toEqual([[5]]);
    await sink.complete();

    // And flush() (write-ahead of a command) never waits for a batch to fill.
    rec.record(0, 'o', randomPayload(1016));
    const flushed = rec.flush();
    expect(sink.held.map((w) => w.chunks.map((c) => c.seq))).toEqual([[6]]);
    await sink.complete();
    await flushed;
    await rec.close();
  });
});

describe('SessionRecorder failure', () => {
  it('emits error once, then refuses record, flush and close', async () => {
    const sink = new ManualSink();
    const rec = recorder(sink, { maxChunkBytes: 64 });
    const errors: unknown[] = [];
    rec.on('error', (err) => errors.push(err));
    rec.record(0, 'o', randomPayload(100)); // one full chunk sealed and being written
    const pendingFlush = rec.flush();
    const flushOutcome = pendingFlush.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await sink.fail(new Error('connection terminated'));

    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(RecordingFailedError);
    expect((errors[0] as Error).message).toMatch(/connection terminated/);
    expect(rec.failed).toBe(true);
    expect(await flushOutcome).toBe(errors[0]);
    expect(() => rec.record(0, 'o', Buffer.from('x'))).toThrow(RecordingFailedError);
    await expect(rec.flush()).rejects.toBeInstanceOf(RecordingFailedError);
    await expect(rec.close()).rejects.toBeInstanceOf(RecordingFailedError);
    await elapse(1_000);
    expect(errors).toHaveLength(1);
  });

  it('after a failure, reports as durable exactly what the store took, head included', async () => {
    const sink = new ManualSink();
    const rec = recorder(sink, { maxChunkBytes: 64, minWriteBytes: 1 });
    rec.on('error', () => undefined);
    expect(rec.durable).toEqual({ chunks: 0, head: null });
    rec.record(0, 'o', randomPayload(56)); // chunk 1, written at once
    const [first] = await sink.complete();
    rec.record(0, 'o', randomPayload(56)); // chunk 2, whose write fails
    await sink.fail(new Error('connection terminated'));
    expect(rec.failed).toBe(true);
    expect(rec.durable).toEqual({ chunks: 1, head: first?.hash });
  });

  it('fails the same way when the sink throws synchronously, and does not crash without an error listener', async () => {
    const sink: ChunkSink = {
      write() {
        throw new Error('pool is closed');
      },
    };
    const rec = recorder(sink);
    rec.record(0, 'o', Buffer.from('x'));
    await expect(rec.flush()).rejects.toThrow(/pool is closed/);
    expect(rec.failed).toBe(true);
    expect(() => rec.record(0, 'o', Buffer.from('y'))).toThrow(RecordingFailedError);
  });

  it('refuses bad arguments and records nothing after close', async () => {
    const rec = recorder(new MemorySink());
    expect(() => rec.record(-1, 'o', Buffer.from('x'))).toThrow(RangeError);
    expect(() => rec.record(0, 'x' as ChunkKind, Buffer.from('x'))).toThrow(TypeError);
    expect(() => rec.record(0, 'o', 'text' as unknown as Buffer)).toThrow(TypeError);
    await expect(rec.close()).resolves.toEqual({ chunks: 0, head: RECORDING_GENESIS_HASH });
    expect(() => rec.record(0, 'o', Buffer.from('x'))).toThrow(/closed/);
    expect(() => recorder(new MemorySink(), { maxChunkBytes: 8 })).toThrow(RangeError);
    expect(() => recorder(new MemorySink(), { flushIntervalMs: 0 })).toThrow(RangeError);
  });
});
