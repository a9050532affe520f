import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { webSocketStream } from './stream.js';

/** A connected pair of streams over a real loopback WebSocket. */
async function pair(
  onServerAbnormal?: (code: number) => void,
): Promise<{ server: Duplex; client: Duplex; clientWs: WebSocket; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const clientWs = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, {
    perMessageDeflate: false,
  });
  await new Promise<void>((resolve) => clientWs.once('open', resolve));
  const serverWs = await accepted;
  return {
    server: webSocketStream(
      serverWs,
      onServerAbnormal ? { onAbnormalClose: onServerAbnormal } : {},
    ),
    client: webSocketStream(clientWs),
    clientWs,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

const readAll = (stream: Duplex): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });

describe('webSocketStream', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('carries bytes both ways and passes a half-close on, like TCP', async () => {
    const p = await pair();
    cleanups.push(p.close);
    const closed = new Promise<number>((resolve) => p.clientWs.once('close', resolve));
    // The client sends and half-closes; the server still answers after reading everything.
    const serverRead = readAll(p.server);
    p.client.end(Buffer.alloc(3 * 1024 * 1024, 7));
    const received = await serverRead;
    expect(received.length).toBe(3 * 1024 * 1024);
    const clientRead = readAll(p.client);
    p.server.end(Buffer.from('answer after eof'));
    expect((await clientRead).toString()).toBe('answer after eof');
    // Both sides ended: the socket closes cleanly.
    expect(await closed).toBe(1000);
  });

  it('reports an abnormal close of the peer, not one of its own making', async () => {
    const abnormal: number[] = [];
    const p = await pair((code) => abnormal.push(code));
    cleanups.push(p.close);
    const serverClosed = new Promise((resolve) => p.server.once('close', resolve));
    p.clientWs.terminate(); // the peer's socket vanishes (a killed process)
    await serverClosed;
    expect(abnormal).toEqual([1006]);

    const q = await pair((code) => abnormal.push(code));
    cleanups.push(q.close);
    const peerClosed = new Promise((resolve) => q.clientWs.once('close', resolve));
    q.server.destroy(); // this side gives up: no report
    await peerClosed;
    expect(abnormal).toEqual([1006]);
  });
});
