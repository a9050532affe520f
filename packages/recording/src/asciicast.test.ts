import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@airlock/domain';
import { createTestDatabase, type TestDatabase } from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asciicastHeader,
  asciicastLines,
  collectFrames,
  outputText,
  pgChunkSink,
  SessionRecorder,
  streamSessionChunks,
  type StoredChunk,
} from './index.js';
import { MemorySink } from './testing/memory-sink.js';
import { insertTestSession } from './testing/session-fixture.js';

const START = new Date('2024-05-01T08:00:00.000Z');
const HEADER = {
  width: 80,
  height: 24,
  startedAt: START,
  title: 'vendor@plc-01',
  term: 'xterm-256color',
};

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

/**
 * A short shell session on channel 0 with the awkward cases: a euro sign and an
 * emoji cut across frames, a resize, typed input, an expiry marker, escape
 * sequences — plus a second channel that must not leak into channel 0.
 */
async function recordSampleSession(rec: SessionRecorder, clock: ManualClock): Promise<void> {
  const euro = Buffer.from('€');
  const emoji = Buffer.from('😀');
  const step = async (ms: number) => {
    clock.advance(ms);
    await rec.flush(); // separate chunks, so the splits also cross chunk boundaries
  };
  rec.record(0, 'r', Buffer.from('80x24'));
  rec.record(0, 'o', Buffer.from('\x1b[1;32mvendor@plc-01\x1b[0m:~$ '));
  await step(120);
  rec.record(0, 'i', Buffer.from('echo price\r'));
  rec.record(1, 'o', Buffer.from('other channel'));
  await step(30);
  rec.record(0, 'o', Buffer.concat([Buffer.from('echo price\r\nprice: 5 '), euro.subarray(0, 2)]));
  await step(1);
  rec.record(0, 'o', Buffer.concat([euro.subarray(2), Buffer.from(' '), emoji.subarray(0, 1)]));
  await step(1);
  rec.record(0, 'o', emoji.subarray(1, 3));
  rec.record(0, 'o', Buffer.concat([emoji.subarray(3), Buffer.from('\r\n')]));
  await step(500);
  rec.record(0, 'r', Buffer.from('132x43'));
  rec.record(0, 'm', Buffer.from('Airlock: this session ends in 5 minutes'));
  await step(10);
  rec.record(0, 'o', Buffer.from('\r\n*** Access ends in 5 minutes ***\r\nvendor@plc-01:~$ '));
}

describe('asciicast v2', () => {
  it('writes a header with the session start in unix seconds', () => {
    const header = asciicastHeader({ ...HEADER, startedAt: new Date('2024-05-01T08:00:00.999Z') });
    expect(header.endsWith('\n')).toBe(true);
    expect(JSON.parse(header)).toEqual({
      version: 2,
      width: 80,
      height: 24,
      timestamp: 1_714_550_400,
      title: 'vendor@plc-01',
      env: { TERM: 'xterm-256color' },
    });
    expect(JSON.parse(asciicastHeader({ width: 100, height: 30, startedAt: START }))).toEqual({
      version: 2,
      width: 100,
      height: 30,
      timestamp: 1_714_550_400,
    });
    expect(() => asciicastHeader({ ...HEADER, width: 0 })).toThrow(RangeError);
  });

  it('exports one channel as valid JSON lines, with split characters intact and resizes present', async () => {
    const clock = new ManualClock(START);
    const sink = new MemorySink();
    const rec = new SessionRecorder({
      sessionId: 'ses_0123456789abcdefghjk',
      sink,
      clock,
      startedAt: START,
    });
    await recordSampleSession(rec, clock);
    await rec.close();

    const lines = await collect(asciicastLines(sink.chunks, { channel: 0, header: HEADER }));
    expect(lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n'))).toBe(
      true,
    );
    const [header, ...events] = lines.map((line) => JSON.parse(line) as unknown);
    expect(header).toMatchObject({ version: 2, width: 80, height: 24 });
    for (const event of events) {
      expect(event).toEqual([
        expect.any(Number),
        expect.stringMatching(/^[oirm]$/),
        expect.any(String),
      ]);
    }
    const typed = events as [number, string, string][];
    const times = typed.map(([t]) => t);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(lines[1]).toMatch(/^\[0\.000000, "r", "80x24"\]\n$/); // six decimals

    const output = typed
      .filter(([, code]) => code === 'o')
      .map(([, , text]) => text)
      .join('');
    expect(output).toContain('price: 5 € 😀\r\n');
    expect(output).not.toContain('\uFFFD');
    expect(output).not.toContain('other channel');
    expect(typed.filter(([, code]) => code === 'r').map(([t, , text]) => [t, text])).toEqual([
      [0, '80x24'],
      [0.652, '132x43'],
    ]);
    expect(typed.filter(([, code]) => code === 'm').map(([, , text]) => text)).toEqual([
      'Airlock: this session ends in 5 minutes',
    ]);
    // Input stays out unless asked for.
    expect(typed.some(([, code]) => code === 'i')).toBe(false);
    const withInput = await collect(
      asciicastLines(sink.chunks, { channel: 0, includeInput: true, header: HEADER }),
    );
    expect(
      withInput
        .map((l) => JSON.parse(l) as unknown)
        .filter((e) => Array.isArray(e) && e[1] === 'i'),
    ).toEqual([[0.12, 'i', 'echo price\r']]);
    // The input comes before the output echoing it.
    const order = withInput.slice(1).map((l) => (JSON.parse(l) as [number, string, string])[1]);
    expect(order.indexOf('i')).toBeLessThan(order.indexOf('o', 2));

    const text = outputText(await collectFrames(sink.chunks, { channel: 0, kind: 'o' }));
    expect(text).toBe(
      'vendor@plc-01:~$ echo price\nprice: 5 € 😀\n\n*** Access ends in 5 minutes ***\nvendor@plc-01:~$ ',
    );
  });

  it('decodes a character cut off by the end of the session as U+FFFD rather than dropping it', async () => {
    const sink = new MemorySink();
    const clock = new ManualClock(START);
    const rec = new SessionRecorder({
      sessionId: 'ses_0123456789abcdefghjk',
      sink,
      clock,
      startedAt: START,
    });
    rec.record(0, 'o', Buffer.concat([Buffer.from('bye '), Buffer.from('€').subarray(0, 2)]));
    await rec.close();
    const lines = await collect(asciicastLines(sink.chunks, { channel: 0, header: HEADER }));
    expect(
      lines
        .slice(1)
        .map((l) => (JSON.parse(l) as [number, string, string])[2])
        .join(''),
    ).toBe('bye \uFFFD');
  });

  describe('from PostgreSQL, played by asciinema', () => {
    let db: TestDatabase;
    let dir: string;

    beforeAll(async () => {
      db = await createTestDatabase();
      dir = await mkdtemp(join(tmpdir(), 'airlock-cast-'));
    });

    afterAll(async () => {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it('is accepted by `asciinema cat`, which prints the recorded text', async () => {
      const sessionId = await insertTestSession(db.pool, START);
      const clock = new ManualClock(START);
      const rec = new SessionRecorder({
        sessionId,
        sink: pgChunkSink(db.pool),
        clock,
        startedAt: START,
      });
      await recordSampleSession(rec, clock);
      await rec.close();

      const chunks: StoredChunk[] = [];
      for await (const chunk of streamSessionChunks(db.pool, sessionId, { batchSize: 2 }))
        chunks.push(chunk);
      const lines = await collect(
        asciicastLines(streamSessionChunks(db.pool, sessionId, { batchSize: 2 }), {
          channel: 0,
          header: HEADER,
        }),
      );
      expect(lines).toEqual(await collect(asciicastLines(chunks, { channel: 0, header: HEADER })));
      const file = join(dir, `${sessionId}.cast`);
      await writeFile(file, lines.join(''));

      if (spawnSync('asciinema', ['--version']).error !== undefined) {
        console.warn(
          'asciinema is not installed: skipping the `asciinema cat` check (CI installs it)',
        );
        return;
      }
      // asciinema 2.x `cat` opens /dev/tty; script(1) gives it a pseudo-terminal when the tests have none.
      const useScript = spawnSync('script', ['--version']).error === undefined;
      const run = useScript
        ? spawnSync('script', ['-qec', `asciinema cat '${file}'`, '/dev/null'], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          })
        : spawnSync('asciinema', ['cat', file], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      const printed = run.stdout.replace(/\r/g, '');
      expect(printed).toContain('price: 5 € 😀');
      expect(printed).toContain('*** Access ends in 5 minutes ***');
      expect(printed).not.toContain('other channel');
    });
  });
});
