/**
 * LiveSession's byte pipe on its own (the gateway tests drive it end to end):
 * what it does with bytes that arrive after the recording was sealed.
 */
import { PassThrough } from 'node:stream';
import { ManualClock } from '@airlock/domain';
import type { ChunkSink, StoredChunk } from '@airlock/recording';
import { describe, expect, it } from 'vitest';
import type { BrokerContext } from '../context.js';
import { LiveSession, type GatewayDeps } from './live-session.js';
import { BulkPacer } from './pacing.js';

function sessionWith(sink: ChunkSink): LiveSession {
  const ctx = { clock: new ManualClock('2026-01-01T08:00:00.000Z') } as unknown as BrokerContext;
  const pacer = new BulkPacer({ bytesPerSecond: 0 });
  const deps = { ctx, recordingSink: sink, pacer } as unknown as GatewayDeps;
  const identity = { user: {}, asset: {}, grant: {} } as unknown as ConstructorParameters<
    typeof LiveSession
  >[1];
  const connection = {} as unknown as ConstructorParameters<typeof LiveSession>[2];
  return new LiveSession(deps, identity, connection, { ip: '127.0.0.1', version: null });
}

describe('LiveSession.pipeRecorded', () => {
  it('records, then forwards, every byte while the recording is open', async () => {
    const written: StoredChunk[] = [];
    const session = sessionWith({
      write: (chunks) => Promise.resolve(void written.push(...chunks)),
    });
    const from = new PassThrough();
    const to = new PassThrough();
    session.pipeRecorded(from, to, 1, 'o');
    from.write(Buffer.from('hello'));
    expect(to.read()?.toString()).toBe('hello');
    await session.recorder.close();
    expect(Buffer.concat(written.map((c) => c.data)).includes('hello')).toBe(true);
  });

  it('drops what the asset still sends once the recording is sealed: never forwarded unrecorded, never thrown into the sender', async () => {
    const session = sessionWith({ write: () => Promise.resolve() });
    const from = new PassThrough();
    const to = new PassThrough();
    session.pipeRecorded(from, to, 1, 'o');
    await session.recorder.close();
    // Before the fix, record() threw from inside the source's 'data' event: inside
    // ssh2's packet parser, which then read the rest of its buffer as garbage.
    expect(() => from.write(Buffer.from('late output'))).not.toThrow();
    expect(to.read()).toBeNull();
    expect(from.isPaused()).toBe(true);
    expect(session.carriesOutput).toBe(false);
  });
});
