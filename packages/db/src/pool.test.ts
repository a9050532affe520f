/**
 * A database that goes silent mid-session (a dropped link, a frozen host)
 * must make queries fail, not hang: the gateway fails a session closed only
 * when its audit or recording write reports the failure.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createEmptyDatabase } from '@airlock/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, withTransaction } from './index.js';

describe('createPool', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  /** A TCP relay to the database that can be told to swallow everything from then on. */
  async function silenceableRelay(target: URL): Promise<{ port: number; silence(): void }> {
    let silent = false;
    const sockets = new Set<Socket>();
    const server: Server = createServer((client) => {
      const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) });
      sockets.add(client).add(upstream);
      client.on('data', (data: Buffer) => void (silent || upstream.write(data)));
      upstream.on('data', (data: Buffer) => void (silent || client.write(data)));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    return { port: (server.address() as AddressInfo).port, silence: () => void (silent = true) };
  }

  it('fails a query to a database that went silent, instead of waiting for ever', async () => {
    const db = await createEmptyDatabase();
    cleanups.push(() => db.drop());
    const url = new URL(db.url);
    const relay = await silenceableRelay(url);
    const viaRelay = new URL(db.url);
    viaRelay.hostname = '127.0.0.1';
    viaRelay.port = String(relay.port);
    const pool = createPool({ connectionString: viaRelay.href, statementTimeoutMillis: 300 });
    cleanups.unshift(() => pool.end().catch(() => undefined));

    expect((await pool.query<{ one: number }>('select 1 as one')).rows[0]?.one).toBe(1);
    relay.silence();
    const started = Date.now();
    await expect(pool.query('select 1')).rejects.toThrow(/timeout/i);
    // statement_timeout (server side, 300 ms) cannot fire: the server never sees the query.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('discards a transaction’s connection whose query timed out, instead of pooling it busy', async () => {
    const db = await createEmptyDatabase();
    cleanups.push(() => db.drop());
    const relay = await silenceableRelay(new URL(db.url));
    const viaRelay = new URL(db.url);
    viaRelay.hostname = '127.0.0.1';
    viaRelay.port = String(relay.port);
    const pool = createPool({ connectionString: viaRelay.href, statementTimeoutMillis: 300 });
    cleanups.unshift(() => pool.end().catch(() => undefined));

    await withTransaction(pool, (client) => client.query('select 1'));
    expect(pool.idleCount).toBe(1);
    relay.silence();
    await expect(withTransaction(pool, (client) => client.query('select 1'))).rejects.toThrow(
      /timeout/i,
    );
    // Put back, it would still be waiting for its query: the next caller would wait behind it.
    expect(pool.totalCount).toBe(0);
  });
});
