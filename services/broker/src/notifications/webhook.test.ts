import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppError, ManualClock } from '@airlock/domain';
import { afterEach, describe, expect, it } from 'vitest';
import { mayReach, parseCidrList } from './egress.js';
import {
  deliverWebhook,
  type DeliverWebhookOptions,
  signWebhook,
  verifyWebhookSignature,
  WEBHOOK_EVENT_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
} from './webhook.js';

/** The test's receivers listen on 127.0.0.1, which webhooks reach only when the operator allows it. */
const LOOPBACK = parseCidrList('127.0.0.1');
const SECRET = 'whsec_example';
const BODY = '{"type":"grant.revoked","id":"whd_1"}';
const T = 1_700_000_000;
// Computed independently: printf '%s' "1700000000.$BODY" | openssl dgst -sha256 -hmac whsec_example
const EXPECTED_V1 = 'd76983b61a17fb15d7d7f2ecd34dd8b4204e65d8aa64df9244b83b6138edcb13';

describe('signWebhook / verifyWebhookSignature', () => {
  it('signs t.body with HMAC-SHA256 in the Stripe-style header format', () => {
    expect(signWebhook(SECRET, BODY, T)).toBe(`t=${T},v1=${EXPECTED_V1}`);
    expect(signWebhook(Buffer.from(SECRET), BODY, T)).toBe(`t=${T},v1=${EXPECTED_V1}`);
  });

  it('verifies a fresh, untouched delivery', () => {
    const header = signWebhook(SECRET, BODY, T);
    expect(verifyWebhookSignature(SECRET, BODY, header, T)).toBe(true);
    expect(verifyWebhookSignature(Buffer.from(SECRET), BODY, header, T + 300)).toBe(true);
    expect(verifyWebhookSignature(SECRET, BODY, header, T - 300)).toBe(true);
  });

  it('rejects a tampered body, a wrong secret and a stale or far-future timestamp', () => {
    const header = signWebhook(SECRET, BODY, T);
    expect(verifyWebhookSignature(SECRET, BODY.replace('revoked', 'activated'), header, T)).toBe(
      false,
    );
    expect(verifyWebhookSignature(`${SECRET}x`, BODY, header, T)).toBe(false);
    expect(verifyWebhookSignature(SECRET, BODY, header, T + 301)).toBe(false);
    expect(verifyWebhookSignature(SECRET, BODY, header, T - 301)).toBe(false);
    expect(verifyWebhookSignature(SECRET, BODY, header, T + 60, 30)).toBe(false);
    // Replaying the signature with a fresh timestamp does not work either.
    expect(verifyWebhookSignature(SECRET, BODY, `t=${T + 1000},v1=${EXPECTED_V1}`, T + 1000)).toBe(
      false,
    );
  });

  it('rejects malformed headers', () => {
    for (const header of [
      '',
      'garbage',
      `v1=${EXPECTED_V1}`,
      `t=${T}`,
      `t=${T},v1=`,
      `t=${T},v1=${EXPECTED_V1.slice(2)}`,
      `t=${T},v1=${EXPECTED_V1}zz`,
      `t=abc,v1=${EXPECTED_V1}`,
      `t=${T},t=${T},v1=${EXPECTED_V1}`,
      `t=${T},v1=${EXPECTED_V1}${',v0=x'.repeat(300)}`,
    ]) {
      expect(verifyWebhookSignature(SECRET, BODY, header, T), header).toBe(false);
    }
    expect(verifyWebhookSignature('', BODY, `t=${T},v1=${EXPECTED_V1}`, T)).toBe(false);
  });

  it('accepts any one matching v1 signature, so secrets can be rotated', () => {
    const other = signWebhook('whsec_old', BODY, T).split(',')[1];
    expect(
      verifyWebhookSignature(SECRET, BODY, `t=${T},${other},v1=${EXPECTED_V1},v2=future`, T),
    ).toBe(true);
    expect(verifyWebhookSignature(SECRET, BODY, `t=${T},${other}`, T)).toBe(false);
  });

  it('refuses to sign with an empty secret or a bad timestamp', () => {
    expect(() => signWebhook('', BODY, T)).toThrow(TypeError);
    expect(() => signWebhook(SECRET, BODY, 1.5)).toThrow(RangeError);
    expect(() => signWebhook(SECRET, BODY, -1)).toThrow(RangeError);
  });
});

interface Received {
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

describe('deliverWebhook', () => {
  const servers: Server[] = [];
  const clock = new ManualClock(T * 1_000 + 999);
  /** deliverWebhook with this file's secret, event, body and clock, to a loopback receiver. */
  const send = (url: string, extra: Partial<DeliverWebhookOptions> = {}) =>
    deliverWebhook({
      url,
      secret: SECRET,
      event: 'grant.revoked',
      body: BODY,
      clock,
      allowedCidrs: LOOPBACK,
      ...extra,
    });

  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  /** A real HTTP endpoint on 127.0.0.1 that records what it received. */
  async function endpoint(
    respond: (req: IncomingMessage, res: ServerResponse) => void,
  ): Promise<{ url: string; received: Received[] }> {
    const received: Received[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({
          method: req.method,
          path: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        respond(req, res);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, received };
  }

  it('POSTs the body with headers the receiver can verify', async () => {
    const { url, received } = await endpoint((_req, res) => res.writeHead(204).end());
    const result = await send(`${url}/hooks/airlock?tenant=7`);
    expect(result).toEqual({ status: 204 });

    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/hooks/airlock?tenant=7');
    expect(request?.body).toBe(BODY);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['user-agent']).toBe('airlock-webhooks/1');
    expect(request?.headers[WEBHOOK_EVENT_HEADER]).toBe('grant.revoked');
    const signature = request?.headers[WEBHOOK_SIGNATURE_HEADER];
    // The timestamp is the injected clock's, in whole seconds.
    expect(signature).toBe(`t=${T},v1=${EXPECTED_V1}`);
    expect(verifyWebhookSignature(SECRET, request?.body ?? '', String(signature), T + 5)).toBe(
      true,
    );
  });

  it('throws on a non-2xx answer, without the secret in the message', async () => {
    const { url } = await endpoint((_req, res) => res.writeHead(503).end('busy'));
    const error = await send(`${url}/x?token=abc`).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain('HTTP 503');
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain('token=abc');
  });

  it('does not follow a redirect', async () => {
    const { url, received } = await endpoint((req, res) => {
      if (req.url === '/start') res.writeHead(307, { location: '/elsewhere' }).end();
      else res.writeHead(200).end();
    });
    await expect(send(`${url}/start`)).rejects.toThrow(
      /HTTP 307 \(a redirect, which is not followed\)/,
    );
    expect(received.map((r) => r.path)).toEqual(['/start']);
  });

  it('gives up when the endpoint does not answer in time', async () => {
    const { url, received } = await endpoint(() => undefined);
    const started = Date.now();
    await expect(send(url, { timeoutMs: 200 })).rejects.toThrow(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(received).toHaveLength(1);
  });

  it('throws on a network error', async () => {
    const { url } = await endpoint((_req, res) => res.end());
    const server = servers.pop();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    const error = await send(url).catch((err: unknown) => err);
    expect((error as Error).message).toMatch(/failed: ECONNREFUSED/);
    expect((error as Error).message).not.toContain(SECRET);
  });

  it('refuses URLs that are not http(s)', async () => {
    for (const url of ['file:///etc/passwd', 'not a url', 'ftp://example.com/hook']) {
      const error = await send(url).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).code).toBe('webhook.invalid_url');
    }
  });

  it('refuses private, loopback, link-local and metadata addresses unless the operator allows them', async () => {
    const { url, received } = await endpoint((_req, res) => res.writeHead(204).end());
    const port = new URL(url).port;
    const refused = [
      `http://127.0.0.1:${port}/x`,
      `http://localhost:${port}/x`, // a name resolving to loopback
      `http://[::1]:${port}/x`,
      `http://[::ffff:127.0.0.1]:${port}/x`, // IPv4-mapped
      'http://169.254.169.254/latest/meta-data/',
      'http://10.1.2.3/hook',
      'https://192.168.0.10/hook',
      'http://[fd00::1]/hook',
    ];
    for (const target of refused) {
      const error = await deliverWebhook({
        url: target,
        secret: SECRET,
        event: 'grant.revoked',
        body: BODY,
        clock,
        timeoutMs: 2_000,
      }).catch((err: unknown) => err);
      expect(error, target).toBeInstanceOf(AppError);
      expect((error as AppError).code, target).toBe('webhook.address_not_allowed');
    }
    expect(received).toHaveLength(0);
    // Listed by the operator, the same endpoint is reached.
    const allowed = await deliverWebhook({
      url: `http://localhost:${port}/x`,
      secret: SECRET,
      event: 'grant.revoked',
      body: BODY,
      clock,
      allowedCidrs: parseCidrList('127.0.0.0/8, ::1'),
    });
    expect(allowed.status).toBe(204);
    expect(received).toHaveLength(1);
  });

  it('judges addresses by range: public ones pass, special-purpose ones only when listed', () => {
    const none = parseCidrList('');
    for (const ok of ['8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8'])
      expect(mayReach(ok, none), ok).toBe(true);
    for (const no of [
      '0.0.0.0',
      '100.64.0.1',
      '172.31.255.255',
      '198.18.0.1',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      'fe80::1',
      'ff02::1',
      '64:ff9b::a00:1',
      '::ffff:a00:1',
    ])
      expect(mayReach(no, none), no).toBe(false);
    expect(mayReach('10.20.3.4', parseCidrList('10.20.0.0/16'))).toBe(true);
    expect(mayReach('10.21.3.4', parseCidrList('10.20.0.0/16'))).toBe(false);
    for (const no of [
      '::7f00:1',
      '64:ff9b:1::a00:1',
      '2002:a00:1::1',
      '2001:0:4136:e378::1',
      'fec0::1',
      '192.88.99.1',
    ])
      expect(mayReach(no, none), no).toBe(false);
    expect(() => parseCidrList('10.0.0.0/33')).toThrow(/prefix/);
    for (const bad of ['example.com', '10.0.0.0/8/x', 'fe80::1%eth0', '10.0.0.0/08'])
      expect(() => parseCidrList(bad), bad).toThrow(/not an IP address/);
  });

  it('checks every delivery’s address afresh: no pooled connection carries over an earlier allowance', async () => {
    const { url, received } = await endpoint((_req, res) => res.writeHead(204).end());
    const port = new URL(url).port;
    const deliver = (path: string, allowedCidrs?: ReturnType<typeof parseCidrList>) =>
      deliverWebhook({
        url: `http://localhost:${port}${path}`,
        secret: SECRET,
        event: 'grant.revoked',
        body: BODY,
        clock,
        ...(allowedCidrs === undefined ? {} : { allowedCidrs }),
      });
    expect((await deliver('/allowed', parseCidrList('127.0.0.0/8, ::1'))).status).toBe(204);
    await expect(deliver('/not-allowed')).rejects.toMatchObject({
      code: 'webhook.address_not_allowed',
    });
    expect(received.map((r) => r.path)).toEqual(['/allowed']);
  });

  it('does not read an answer’s body: an endless one neither holds the connection nor the broker', async () => {
    let closed = false;
    const { url } = await endpoint((req, res) => {
      res.writeHead(200);
      const flood = setInterval(() => res.write(Buffer.alloc(64 * 1024)), 5);
      req.socket.once('close', () => {
        clearInterval(flood);
        closed = true;
      });
    });
    const result = await send(url);
    expect(result.status).toBe(200);
    for (let i = 0; i < 100 && !closed; i += 1) await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(true);
  });
});
