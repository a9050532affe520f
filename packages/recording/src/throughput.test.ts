import { randomBytes } from 'node:crypto';
import { systemClock } from '@airlock/domain';
import { createTestDatabase, type TestDatabase } from '@airlock/test-support';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pgChunkSink, SessionRecorder, verifySessionRecording } from './index.js';
import { insertTestSession } from './testing/session-fixture.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

/**
 * A measurement, not a benchmark gate: logs what the recorder and pgChunkSink
 * sustain with default settings, honouring backpressure as the gateway will.
 * Asserts only that everything arrived.
 */
it('measures recorder + pgChunkSink throughput for 64 MiB of output in 16 KiB writes', async () => {
  const sessionId = await insertTestSession(db.pool);
  const rec = new SessionRecorder({
    sessionId,
    sink: pgChunkSink(db.pool),
    clock: systemClock,
    startedAt: new Date(),
  });
  // Distinct random blocks, so neither TOAST compression nor reuse flatters the figure.
  const blocks = Array.from({ length: 64 }, () => randomBytes(16 * 1024));
  const total = 64 * 1024 * 1024;
  let paused = 0;
  const started = process.hrtime.bigint();
  for (let sent = 0, i = 0; sent < total; sent += 16 * 1024, i++) {
    if (!rec.record(0, 'o', blocks[i % blocks.length]!)) {
      paused += 1;
      await new Promise<void>((resolve) => rec.once('drain', resolve));
    }
  }
  const closed = await rec.close();
  const recordSeconds = Number(process.hrtime.bigint() - started) / 1e9;

  const verifyStarted = process.hrtime.bigint();
  const verified = await verifySessionRecording(db.pool, sessionId, closed);
  const verifySeconds = Number(process.hrtime.bigint() - verifyStarted) / 1e9;

  const mib = total / (1024 * 1024);
  console.log(
    `recording throughput: ${(mib / recordSeconds).toFixed(1)} MiB/s recorded durably ` +
      `(${mib} MiB in ${recordSeconds.toFixed(2)} s, ${closed.chunks} chunks, paused ${paused}×); ` +
      `verification ${(mib / verifySeconds).toFixed(1)} MiB/s`,
  );
  expect(verified).toMatchObject({ ok: true, chunks: closed.chunks });
}, 300_000);
