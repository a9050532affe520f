/**
 * A socket flooded with data must not take the whole event loop turn: after
 * its budget it waits for the next turn, and nothing is lost or reordered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { READ_BUDGET_PER_TURN, shareEventLoop } from './fair-reads.js';

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
    // Without it, libuv hands over many reads in one turn.
    expect(greedy.mostInOneTurn).toBeGreaterThan(4 * READ_BUDGET_PER_TURN);

    const fair = await flood(payload, true);
    expect(digest(fair.received)).toBe(digest(payload));
    // One read may overshoot the budget by at most one read's size (64 KiB).
    expect(fair.mostInOneTurn).toBeLessThanOrEqual(READ_BUDGET_PER_TURN + 64 * 1024);
  });
});
