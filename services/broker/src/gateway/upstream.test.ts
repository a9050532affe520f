/**
 * The direct dialer hands a forwarded port's socket to the session pipeline
 * alone: when the pipeline holds it (recorder or vendor full, pacing), it
 * stays held — nothing else resumes it behind the pipeline's back.
 */
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AssetRecord } from '../features/assets/repository.js';
import { ChannelFlow, READ_BUDGET_PER_TURN } from './fair-reads.js';
import { directDialer, type DialContext } from './upstream.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

const asset = (port: number): AssetRecord => ({
  id: '00000000-0000-4000-8000-000000000001',
  name: 'plc-01',
  zoneId: '00000000-0000-4000-8000-000000000002',
  host: '127.0.0.1',
  port,
  protocol: 'tcp',
  login: null,
  sealedCredential: null,
  credentialKind: null,
  hostKey: null,
  forwardPorts: [port],
  description: null,
  createdAt: new Date(),
  updatedAt: new Date(),
});

const context: DialContext = {
  sessionId: '00000000-0000-4000-8000-000000000003',
  grant: {
    id: '00000000-0000-4000-8000-000000000004',
    userId: '00000000-0000-4000-8000-000000000005',
    notBefore: new Date(0),
    notAfter: new Date(Date.now() + 60_000),
  },
  onConnectorLost: () => undefined,
};

describe('directDialer', () => {
  it('leaves a held forwarded-port socket held while the asset floods it', async () => {
    const flood = Buffer.alloc(8 * 1024 * 1024);
    server = createServer((socket) => {
      // The test hangs up with the flood unread: the reset is expected.
      socket.on('error', () => undefined);
      socket.end(flood);
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;

    const socket = await directDialer.dial(asset(port), port, context);
    // The vendor's side never drains: the pipeline holds the socket for good.
    const vendorFull = new EventEmitter();
    const flow = new ChannelFlow(socket, () => true);
    let received = 0;
    socket.on('data', (data: Buffer) => {
      received += data.length;
      flow.passed(data.length, [vendorFull]);
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.destroy();
    // One read (libuv reads at most 64 KiB) arrives, then the hold holds.
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(READ_BUDGET_PER_TURN);
  });
});
