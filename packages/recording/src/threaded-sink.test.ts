/**
 * The recording writer thread against real PostgreSQL: the same rows as
 * pgChunkSink, memory moved rather than copied (and never Node's shared pool),
 * and every failure reported to the writer's caller.
 */
import { systemClock } from '@airlock/domain';
import { createTestDatabase, type TestDatabase } from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chunkHash,
  collectFrames,
  MAX_CHUNK_SLACK_BYTES,
  RECORDING_GENESIS_HASH,
  RecordingWriteError,
  SessionRecorder,
  streamSessionChunks,
  ThreadedChunkSink,
  verifySessionRecording,
  type ChunkSink,
  type StoredChunk,
} from './index.js';
import { randomPayload } from './testing/memory-sink.js';
import { insertTestSession } from './testing/session-fixture.js';

let db: TestDatabase;
let sink: ThreadedChunkSink;

beforeAll(async () => {
  db = await createTestDatabase();
  sink = new ThreadedChunkSink({ connectionString: db.url });
});

afterAll(async () => {
  await sink.close();
  await db.drop();
});

function chunkFor(sessionId: string, seq: number, prevHash: string, data: Buffer): StoredChunk {
  const content = { sessionId, seq, channel: 0, kind: 'o' as const, offsetMs: seq, data };
  return { ...content, prevHash, hash: chunkHash(prevHash, content) };
}

/** Reads a sink's chunks back as it was handed them, before it could take their memory. */
function copying(inner: ChunkSink, seen: StoredChunk[]): ChunkSink {
  return {
    write(chunks) {
      for (const c of chunks) seen.push({ ...c, data: Buffer.from(c.data) });
      return inner.write(chunks);
    },
  };
}

describe('ThreadedChunkSink', () => {
  it('stores a recorded session byte for byte, and it verifies', async () => {
    const sessionId = await insertTestSession(db.pool);
    const handed: StoredChunk[] = [];
    const recorder = new SessionRecorder({
      sessionId,
      sink: copying(sink, handed),
      clock: systemClock,
      startedAt: new Date(),
    });
    const output: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      // Keystroke-sized and bulk-sized events, as a shell session with a download has.
      const piece = randomPayload(i % 10 === 0 ? 48 * 1024 : 1 + (i % 200));
      output.push(piece);
      if (!recorder.record(0, 'o', piece)) await new Promise((r) => recorder.once('drain', r));
      if (i % 50 === 0) recorder.record(0, 'i', Buffer.from('x'));
    }
    const closed = await recorder.close();

    const stored: StoredChunk[] = [];
    for await (const chunk of streamSessionChunks(db.pool, sessionId)) stored.push(chunk);
    expect(stored.map((c) => c.seq)).toEqual(handed.map((c) => c.seq));
    stored.forEach((c, i) => expect(c.data.equals(handed[i]?.data ?? Buffer.alloc(0))).toBe(true));
    const frames = await collectFrames(stored, { channel: 0, kind: 'o' });
    expect(Buffer.concat(frames.map((f) => f.data)).equals(Buffer.concat(output))).toBe(true);
    expect(await verifySessionRecording(db.pool, sessionId, closed)).toMatchObject({ ok: true });
  });

  it("moves each chunk's own memory to the thread, and copies what may be shared", async () => {
    const sessionId = await insertTestSession(db.pool);
    const own = Buffer.allocUnsafeSlow(32 * 1024).fill(1);
    // A small Buffer.from is a slice of Node's shared pool: its neighbours must survive.
    const pooled = Buffer.from('pooled bytes');
    const neighbour = Buffer.from('the neighbour in the same pool');
    expect(pooled.buffer).toBe(neighbour.buffer);
    const first = chunkFor(sessionId, 1, RECORDING_GENESIS_HASH, own);
    const second = chunkFor(sessionId, 2, first.hash, pooled);
    await sink.write([first, second]);
    expect(own.buffer.byteLength).toBe(0); // detached: moved, not copied
    expect(pooled.toString()).toBe('pooled bytes');
    expect(neighbour.toString()).toBe('the neighbour in the same pool');
    const { rows } = await db.pool.query<{ seq: number; data: Buffer }>(
      'select seq, data from session_chunks where session_id = $1 order by seq',
      [sessionId],
    );
    expect(rows.map((r) => r.data.length)).toEqual([32 * 1024, 'pooled bytes'.length]);
    expect(rows[0]?.data.every((b) => b === 1)).toBe(true);
  });

  it("rejects a write PostgreSQL refuses, with PostgreSQL's code, and keeps serving others", async () => {
    const sessionId = await insertTestSession(db.pool);
    const first = chunkFor(sessionId, 1, RECORDING_GENESIS_HASH, Buffer.from('one'));
    await sink.write([first]);
    const again = chunkFor(sessionId, 1, RECORDING_GENESIS_HASH, Buffer.from('one again'));
    const refused = await sink.write([again]).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RecordingWriteError);
    expect((refused as RecordingWriteError).code).toBe('23505'); // unique_violation: (session, seq)
    const unknownSession = chunkFor(
      'ses_doesnotexist0000000',
      1,
      RECORDING_GENESIS_HASH,
      Buffer.from('x'),
    );
    await expect(sink.write([unknownSession])).rejects.toMatchObject({ code: '23503' });
    await sink.write([chunkFor(sessionId, 2, first.hash, Buffer.from('two'))]);
    const { rows } = await db.pool.query('select 1 from session_chunks where session_id = $1', [
      sessionId,
    ]);
    expect(rows).toHaveLength(2);
  });

  it('fails writes when its database is unreachable, and refuses every write once closed', async () => {
    const unreachable = new ThreadedChunkSink({
      connectionString: 'postgres://nobody@127.0.0.1:1/none',
    });
    const sessionId = 'ses_unreachable000000000';
    await expect(
      unreachable.write([chunkFor(sessionId, 1, RECORDING_GENESIS_HASH, Buffer.from('x'))]),
    ).rejects.toBeInstanceOf(RecordingWriteError);
    await unreachable.close();
    await expect(
      unreachable.write([chunkFor(sessionId, 1, RECORDING_GENESIS_HASH, Buffer.from('x'))]),
    ).rejects.toThrow(/closed/);
  });
});

describe("SessionRecorder's chunks own their memory", () => {
  it('never hands a sink a slice of a shared buffer, and keeps little slack', async () => {
    const handed: StoredChunk[] = [];
    const recorder = new SessionRecorder({
      sessionId: 'ses_memory00000000000000',
      sink: { write: (chunks) => Promise.resolve(void handed.push(...chunks)) },
      clock: systemClock,
      startedAt: new Date(),
      flushIntervalMs: 5,
    });
    for (let i = 0; i < 200; i++) {
      recorder.record(i % 3, i % 2 === 0 ? 'o' : 'i', Buffer.from(`event ${i}`));
      if (i % 40 === 0) recorder.record(0, 'o', Buffer.alloc(40 * 1024, i));
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 6));
    }
    await recorder.close();
    expect(handed.length).toBeGreaterThan(10);
    const memories = new Set(handed.map((c) => c.data.buffer));
    expect(memories.size).toBe(handed.length);
    for (const chunk of handed) {
      expect(chunk.data.byteOffset).toBe(0);
      expect(chunk.data.buffer.byteLength - chunk.data.length).toBeLessThanOrEqual(
        MAX_CHUNK_SLACK_BYTES,
      );
    }
  });
});
