/**
 * A socket flooded with data must not take the whole event loop turn: after
 * its budget it waits for the next turn, and nothing is lost or reordered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelFlow, READ_BUDGET_PER_TURN, shareEventLoop } from './fair-reads.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** Sends `payload` as fast as loopback takes it to a client, and reads it with or without fairness. */
async function flood(
  payload: Buffer,
  fair: boolean,
): Promise<{ received: Buffer; mostInOneTurn: number }> {
  server = createServer((socket) => {
    socket.end(payload);
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client: Socket = connect({ host: '127.0.0.1', port });
  // Let the sender fill the socket buffers first, so that reads find plenty waiting.
  client.pause();
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (fair) shareEventLoop(client);
  let turn = 0;
  let ended = false;
  const perTurn = new Map<number, number>();
  const nextTurn = (): void => {
    turn += 1;
    if (!ended) setImmediate(nextTurn);
  };
  setImmediate(nextTurn);
  const chunks: Buffer[] = [];
  client.on('data', (data: Buffer) => {
    chunks.push(data);
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + data.length);
  });
  client.resume();
  await new Promise((resolve) => client.once('end', resolve));
  ended = true;
  client.destroy();
  return { received: Buffer.concat(chunks), mostInOneTurn: Math.max(...perTurn.values()) };
}

describe('shareEventLoop', () => {
  it('reads at most about its budget per event loop turn, and loses nothing', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

    const greedy = await flood(payload, false);
    expect(digest(greedy.received)).toBe(digest(payload));
    // Without it, libuv hands over several reads in one turn, more than the
    // fair bound below (how many depends on how busy the machine is).
    expect(greedy.mostInOneTurn).toBeGreaterThan(READ_BUDGET_PER_TURN + 64 * 1024);

    const fair = await flood(payload, true);
    expect(digest(fair.received)).toBe(digest(payload));
    // One read may overshoot the budget by at most one read's size (64 KiB).
    expect(fair.mostInOneTurn).toBeLessThanOrEqual(READ_BUDGET_PER_TURN + 64 * 1024);
  });
});

/** A channel that was held while 2 MiB (an ssh2 window) arrived, as after a full recorder. */
function heldChannel(): { source: PassThrough; payload: Buffer } {
  const source = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const payload = randomBytes(2 * 1024 * 1024);
  for (let at = 0; at < payload.length; at += 32 * 1024)
    source.write(payload.subarray(at, at + 32 * 1024));
  source.end();
  source.pause();
  return { source, payload };
}

/** Reads `source` through a ChannelFlow to its end: bytes seen per event loop turn. */
async function drainThrough(
  source: PassThrough,
  pipeline: (flow: ChannelFlow, data: Buffer) => void,
  mayFlow: () => boolean = () => true,
): Promise<{ received: Buffer; mostInOneTurn: number }> {
  const flow = new ChannelFlow(source, mayFlow);
  let turn = 0;
  let ended = false;
  const nextTurn = (): void => {
    turn += 1;
    if (!ended) setImmediate(nextTurn);
  };
  setImmediate(nextTurn);
  const perTurn = new Map<number, number>();
  const chunks: Buffer[] = [];
  source.on('data', (data: Buffer) => {
    chunks.push(data);
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + data.length);
    pipeline(flow, data);
  });
  source.resume();
  await new Promise((resolve) => source.once('end', resolve));
  ended = true;
  return { received: Buffer.concat(chunks), mostInOneTurn: Math.max(...perTurn.values()) };
}

describe('ChannelFlow', () => {
  it('spreads what a held channel kept over turns, a share each, in order and whole', async () => {
    const { source, payload } = heldChannel();
    const { received, mostInOneTurn } = await drainThrough(source, (flow, data) =>
      flow.passed(data.length, []),
    );
    expect(received.equals(payload)).toBe(true);
    // Without the share, resume() hands over all 2 MiB in one turn.
    expect(mostInOneTurn).toBeLessThanOrEqual(READ_BUDGET_PER_TURN + 32 * 1024);
  });

  it('stays held until what is full drains, whatever turns pass meanwhile', async () => {
    const { source, payload } = heldChannel();
    const recorder = new EventEmitter();
    let full = false;
    let fills = 0;
    let taken = 0;
    let emittedWhileFull = 0;
    const { received } = await drainThrough(source, (flow, data) => {
      if (full) emittedWhileFull += data.length;
      taken += data.length;
      // Every 256 KiB the "recorder" is full for 20 ms (many turns).
      if (taken % (256 * 1024) === 0) {
        full = true;
        fills += 1;
        setTimeout(() => {
          full = false;
          recorder.emit('drain');
        }, 20);
        flow.passed(data.length, [recorder]);
      } else flow.passed(data.length, []);
    });
    expect(received.equals(payload)).toBe(true);
    expect(fills).toBe(8);
    expect(emittedWhileFull).toBe(0);
  });

  it('does not resume a channel the session no longer carries', async () => {
    const { source } = heldChannel();
    const flow = new ChannelFlow(source, () => false);
    let seen = 0;
    source.on('data', (data: Buffer) => {
      seen += data.length;
      flow.passed(data.length, []);
    });
    source.resume();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThanOrEqual(READ_BUDGET_PER_TURN + 32 * 1024);
    expect(source.isPaused()).toBe(true);
  });

  it('holds a paced channel for the time it is told, then lets it flow on', async () => {
    const { source, payload } = heldChannel();
    const started = performance.now();
    let paced = false;
    let resumedAfterMs = 0;
    const { received } = await drainThrough(source, (flow, data) => {
      if (paced && resumedAfterMs === 0) resumedAfterMs = performance.now() - started;
      if (!paced) {
        paced = true;
        flow.passed(data.length, [], 40);
      } else flow.passed(data.length, []);
    });
    expect(received.equals(payload)).toBe(true);
    expect(resumedAfterMs).toBeGreaterThanOrEqual(39);
  });
});
