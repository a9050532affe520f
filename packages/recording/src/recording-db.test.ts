import { systemClock, ManualClock } from '@airlock/domain';
import { createTestDatabase, type TestDatabase } from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chunkHash,
  collectFrames,
  extentToSeal,
  pgChunkSink,
  RECORDING_GENESIS_HASH,
  SessionRecorder,
  streamSessionChunks,
  verifySessionRecording,
  type StoredChunk,
} from './index.js';
import { randomPayload, seededRandom } from './testing/memory-sink.js';
import { insertTestSession } from './testing/session-fixture.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function waitForDrain(rec: SessionRecorder): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      rec.off('error', onError);
      resolve();
    };
    const onError = (err: unknown) => {
      rec.off('drain', onDrain);
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    rec.once('drain', onDrain);
    rec.once('error', onError);
  });
}

/** Feeds pieces through a recorder the way the gateway will: pausing on false until 'drain'. */
async function recordAll(rec: SessionRecorder, pieces: Iterable<Buffer>): Promise<void> {
  for (const piece of pieces) {
    if (!rec.record(0, 'o', piece)) await waitForDrain(rec);
  }
}

/** Runs `sql` as superuser with the append-only triggers off, as an attacker with database access would. */
async function tamper(sql: string): Promise<void> {
  await db.superuserQuery(`set session_replication_role = replica; ${sql}`);
}

/** A session with six chunks (seq 1..6), alternating output and input. */
async function sixChunkSession(): Promise<{
  sessionId: string;
  closed: { chunks: number; head: string };
}> {
  const sessionId = await insertTestSession(db.pool);
  const clock = new ManualClock('2024-05-01T08:00:00.000Z');
  const rec = new SessionRecorder({
    sessionId,
    sink: pgChunkSink(db.pool),
    clock,
    startedAt: clock.now(),
  });
  for (let i = 1; i <= 6; i++) {
    clock.advance(100);
    rec.record(0, i % 2 === 0 ? 'i' : 'o', Buffer.from(`chunk ${i} `.repeat(i)));
    await rec.flush();
  }
  const closed = await rec.close();
  expect(closed.chunks).toBe(6);
  return { sessionId, closed };
}

describe('pgChunkSink', () => {
  it('stores 5 MiB of random output in random-sized pieces byte for byte', async () => {
    const sessionId = await insertTestSession(db.pool);
    const rec = new SessionRecorder({
      sessionId,
      sink: pgChunkSink(db.pool),
      clock: systemClock,
      startedAt: new Date(),
      highWaterMark: 256 * 1024,
    });
    const random = seededRandom(42);
    const pieces: Buffer[] = [];
    let total = 0;
    while (total < 5 * 1024 * 1024) {
      const size =
        random() < 0.2 ? 1 + Math.floor(random() * 16) : 1 + Math.floor(random() * 64 * 1024);
      pieces.push(randomPayload(size));
      total += size;
    }
    await recordAll(rec, pieces);
    const closed = await rec.close();

    const chunks: StoredChunk[] = [];
    for await (const chunk of streamSessionChunks(db.pool, sessionId, { batchSize: 17 }))
      chunks.push(chunk);
    expect(chunks.map((c) => c.seq)).toEqual(
      Array.from({ length: closed.chunks }, (_, i) => i + 1),
    );
    expect(chunks.every((c) => c.data.length <= 32 * 1024)).toBe(true);
    // Far fewer rows than writes: coalescing works against a real database too.
    expect(chunks.length).toBeLessThan(pieces.length);
    const frames = await collectFrames(chunks, { channel: 0, kind: 'o' });
    expect(Buffer.concat(frames.map((f) => f.data)).equals(Buffer.concat(pieces))).toBe(true);
    await expect(verifySessionRecording(db.pool, sessionId, closed)).resolves.toEqual({
      ok: true,
      chunks: closed.chunks,
      head: closed.head,
    });
    const row = await db.pool.query<{ n: number }>(
      'select count(*)::int as n from session_chunks where session_id = $1',
      [sessionId],
    );
    expect(row.rows[0]!.n).toBe(closed.chunks);
  });

  it('writes more chunks than one INSERT can carry, all or nothing', async () => {
    const sessionId = await insertTestSession(db.pool);
    const sink = pgChunkSink(db.pool);
    const chunks: StoredChunk[] = [];
    let prev = RECORDING_GENESIS_HASH;
    for (let seq = 1; seq <= 9_000; seq++) {
      const content = {
        sessionId,
        seq,
        channel: 0,
        kind: 'o' as const,
        offsetMs: seq,
        data: Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, seq & 0xff]),
      };
      const hash = chunkHash(prev, content);
      chunks.push({ ...content, prevHash: prev, hash });
      prev = hash;
    }
    // A duplicate seq in the last statement must roll back the whole call.
    await expect(sink.write([...chunks, { ...chunks[0]!, seq: 8_999 }])).rejects.toThrow(
      /duplicate key/,
    );
    await expect(verifySessionRecording(db.pool, sessionId)).resolves.toMatchObject({
      ok: true,
      chunks: 0,
    });
    await sink.write(chunks);
    await expect(
      verifySessionRecording(db.pool, sessionId, { chunks: 9_000, head: prev }),
    ).resolves.toMatchObject({ ok: true, chunks: 9_000 });
  });

  it('is refused by the append-only triggers for anyone who does not disable them', async () => {
    const { sessionId } = await sixChunkSession();
    await expect(
      db.pool.query(`update session_chunks set data = '\\x00' where session_id = $1 and seq = 1`, [
        sessionId,
      ]),
    ).rejects.toThrow(/not allowed/);
    await expect(
      db.pool.query(`delete from session_chunks where session_id = $1`, [sessionId]),
    ).rejects.toThrow(/not allowed/);
  });
});

describe('verifySessionRecording', () => {
  it('accepts an untouched recording, and an empty one', async () => {
    const { sessionId, closed } = await sixChunkSession();
    await expect(verifySessionRecording(db.pool, sessionId, closed)).resolves.toEqual({
      ok: true,
      chunks: 6,
      head: closed.head,
    });
    const empty = await insertTestSession(db.pool);
    await expect(
      verifySessionRecording(db.pool, empty, { chunks: 0, head: null }),
    ).resolves.toEqual({
      ok: true,
      chunks: 0,
      head: RECORDING_GENESIS_HASH,
    });
  });

  it('detects one changed byte of data', async () => {
    const { sessionId, closed } = await sixChunkSession();
    await tamper(
      `update session_chunks set data = set_byte(data, 9, get_byte(data, 9) # 1) where session_id = '${sessionId}' and seq = 3`,
    );
    const result = await verifySessionRecording(db.pool, sessionId, closed);
    expect(result).toMatchObject({
      ok: false,
      chunks: 2,
      firstBad: { seq: 3, reason: 'hash_mismatch' },
    });
  });

  it.each([
    ['offset_ms', 'offset_ms = offset_ms + 1'],
    ['kind', `kind = 'o'`],
    ['channel', 'channel = 1'],
  ])('detects a changed %s', async (_column, assignment) => {
    const { sessionId, closed } = await sixChunkSession();
    await tamper(
      `update session_chunks set ${assignment} where session_id = '${sessionId}' and seq = 4`,
    );
    const result = await verifySessionRecording(db.pool, sessionId, closed);
    expect(result.firstBad).toMatchObject({ seq: 4, reason: 'hash_mismatch' });
  });

  it('detects a swapped pair of chunks', async () => {
    const { sessionId, closed } = await sixChunkSession();
    await tamper(`
      update session_chunks set seq = 1000 where session_id = '${sessionId}' and seq = 2;
      update session_chunks set seq = 2 where session_id = '${sessionId}' and seq = 3;
      update session_chunks set seq = 3 where session_id = '${sessionId}' and seq = 1000;`);
    const result = await verifySessionRecording(db.pool, sessionId, closed);
    expect(result).toMatchObject({
      ok: false,
      chunks: 1,
      firstBad: { seq: 2, reason: 'prev_hash_mismatch' },
    });
  });

  it('detects a deleted middle chunk, renumbered or not', async () => {
    const gap = await sixChunkSession();
    await tamper(`delete from session_chunks where session_id = '${gap.sessionId}' and seq = 3`);
    expect(
      (await verifySessionRecording(db.pool, gap.sessionId, gap.closed)).firstBad,
    ).toMatchObject({
      seq: 3,
      reason: 'seq_gap',
    });

    const renumbered = await sixChunkSession();
    await tamper(`
      delete from session_chunks where session_id = '${renumbered.sessionId}' and seq = 3;
      update session_chunks set seq = seq - 1 where session_id = '${renumbered.sessionId}' and seq > 3;`);
    expect(
      (await verifySessionRecording(db.pool, renumbered.sessionId, renumbered.closed)).firstBad,
    ).toMatchObject({
      seq: 3,
      reason: 'prev_hash_mismatch',
    });
  });

  it('detects a deleted last chunk against the head kept from close()', async () => {
    const { sessionId, closed } = await sixChunkSession();
    await tamper(`delete from session_chunks where session_id = '${sessionId}' and seq = 6`);
    // The chain alone cannot see a shortened tail: that is what `expected` is for.
    expect((await verifySessionRecording(db.pool, sessionId)).ok).toBe(true);
    const result = await verifySessionRecording(db.pool, sessionId, closed);
    expect(result).toMatchObject({
      ok: false,
      chunks: 5,
      firstBad: { seq: 6, reason: 'count_mismatch' },
    });
  });

  it('detects a last chunk rewritten with a recomputed hash', async () => {
    const { sessionId, closed } = await sixChunkSession();
    const last = (
      await db.pool.query<{ prev_hash: string; offset_ms: number }>(
        `select prev_hash, offset_ms from session_chunks where session_id = $1 and seq = 6`,
        [sessionId],
      )
    ).rows[0]!;
    const forged = Buffer.from([0, 0, 0, 0, 0, 0, 0, 4, 0x6f, 0x6b, 0x0d, 0x0a]);
    const hash = chunkHash(last.prev_hash, {
      sessionId,
      seq: 6,
      channel: 0,
      kind: 'i',
      offsetMs: last.offset_ms,
      data: forged,
    });
    await tamper(
      `update session_chunks set data = '\\x${forged.toString('hex')}', hash = '${hash}' where session_id = '${sessionId}' and seq = 6`,
    );
    expect((await verifySessionRecording(db.pool, sessionId)).ok).toBe(true);
    expect((await verifySessionRecording(db.pool, sessionId, closed)).firstBad).toMatchObject({
      seq: 6,
      reason: 'head_mismatch',
    });
  });

  it('reports a chunk that hashes correctly but cannot be decoded', async () => {
    const sessionId = await insertTestSession(db.pool);
    const content = {
      sessionId,
      seq: 1,
      channel: 0,
      kind: 'o' as const,
      offsetMs: 0,
      data: Buffer.from([0, 0, 0, 0, 0, 0, 0, 9, 0x41]),
    };
    await pgChunkSink(db.pool).write([
      {
        ...content,
        prevHash: RECORDING_GENESIS_HASH,
        hash: chunkHash(RECORDING_GENESIS_HASH, content),
      },
    ]);
    expect((await verifySessionRecording(db.pool, sessionId)).firstBad).toMatchObject({
      seq: 1,
      reason: 'decode_error',
    });
  });
});

describe('extentToSeal', () => {
  /** A recorder whose writes land, until the `failAt`-th, which commits and then reports failure. */
  async function answerLostAt(failAt: number): Promise<{
    sessionId: string;
    rec: SessionRecorder;
  }> {
    const sessionId = await insertTestSession(db.pool);
    const store = pgChunkSink(db.pool);
    let writes = 0;
    const clock = new ManualClock('2024-05-01T08:00:00.000Z');
    const rec = new SessionRecorder({
      sessionId,
      sink: {
        async write(chunks) {
          await store.write(chunks);
          writes += 1;
          if (writes === failAt) throw new Error('the writer died before it answered');
        },
      },
      clock,
      startedAt: clock.now(),
    });
    rec.on('error', () => undefined);
    for (let i = 1; i <= failAt; i++) {
      clock.advance(100);
      rec.record(0, 'o', Buffer.from(`chunk ${i}`));
      await rec.flush().catch(() => undefined);
    }
    await expect(rec.close()).rejects.toThrow();
    return { sessionId, rec };
  }

  it('seals the stored chunks when the last write committed but its answer was lost', async () => {
    const { sessionId, rec } = await answerLostAt(3);
    expect(rec.durable.chunks).toBe(2);
    const extent = await extentToSeal(db.pool, sessionId, rec);
    expect(extent).toEqual({ chunks: 3, head: rec.unanswered?.head, storedDiffers: false });
    expect((await verifySessionRecording(db.pool, sessionId, extent)).ok).toBe(true);
  });

  it('seals what the recorder knows, and says so, when the store holds chunks it did not write', async () => {
    const { sessionId, rec } = await answerLostAt(2);
    const forged = {
      sessionId,
      seq: 3,
      channel: 0,
      kind: 'o' as const,
      offsetMs: 900,
      data: Buffer.from('forged'),
    };
    const prevHash = rec.unanswered?.head ?? RECORDING_GENESIS_HASH;
    await pgChunkSink(db.pool).write([{ ...forged, prevHash, hash: chunkHash(prevHash, forged) }]);
    const extent = await extentToSeal(db.pool, sessionId, rec);
    expect(extent).toEqual({ ...rec.durable, storedDiffers: true });
    expect((await verifySessionRecording(db.pool, sessionId, extent)).ok).toBe(false);
  });
});
