/**
 * Signed webhooks end to end: a real local HTTP receiver, the outbox job
 * delivering through the lifecycle runner, retries with backoff driven by the
 * injected clock.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestBroker, type TestBroker } from '../testing/harness.js';
import { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from './webhook.js';

interface Received {
  readonly path: string;
  readonly body: string;
  readonly signature: string;
}

describe('webhook notifications', () => {
  let t: TestBroker;
  let server: Server;
  let base: string;
  const received: Received[] = [];
  let failNext = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (failNext > 0) {
          failNext -= 1;
          res.writeHead(503).end();
          return;
        }
        received.push({
          path: req.url ?? '',
          body: Buffer.concat(chunks).toString(),
          signature: String(req.headers[WEBHOOK_SIGNATURE_HEADER]),
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // The receiver listens on loopback, which webhooks reach only when the operator lists it.
    t = await createTestBroker({ config: { webhookAllowedCidrs: ['127.0.0.1'] } });
  });

  afterAll(async () => {
    await t.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('tells approvers of a new request and the vendor of the decision, signed and retried', async () => {
    const approver = await t.user('alice', ['approver']);
    const vendor = await t.user('vera', ['vendor'], { organization: 'Nordwerk' });
    const zone = await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      body: { name: 'Zone', policy: { requiredApprovals: 1 } },
    });
    await t.call('PUT', `/api/v1/zones/${zone.body.id}/approvers`, {
      token: t.admin.token,
      body: { userIds: [approver.id] },
    });
    const asset = await t.call('POST', '/api/v1/assets', {
      token: t.admin.token,
      body: {
        name: 'plc-1',
        zoneId: zone.body.id,
        host: 'plc1.local',
        port: 502,
        protocol: 'modbus',
      },
    });

    const approverHook = await t.call('PUT', '/api/v1/me/webhook', {
      token: approver.token,
      body: { url: `${base}/approver` },
    });
    const vendorHook = await t.call('PUT', '/api/v1/me/webhook', {
      token: vendor.token,
      body: { url: `${base}/vendor` },
    });
    expect(approverHook.status).toBe(200);
    const approverSecret: string = approverHook.body.secret;
    const vendorSecret: string = vendorHook.body.secret;
    expect(approverSecret).toMatch(/^whsec_/);
    // The secret is shown once: the user record only says a webhook exists.
    const me = await t.call('GET', '/api/v1/me', { token: approver.token });
    expect(JSON.stringify(me.body)).not.toContain(approverSecret);
    expect(me.body.user.webhookConfigured).toBe(true);

    const filed = await t.call('POST', '/api/v1/requests', {
      token: vendor.token,
      body: {
        assetIds: [asset.body.id],
        durationMinutes: 30,
        reason: 'Valve check',
        ticket: 'WO-1',
      },
    });
    // The first attempt fails; the job is retried later, not lost.
    failNext = 1;
    await t.jobs.runDue();
    expect(received).toHaveLength(0);
    t.clock.advance(60_000);
    await t.jobs.runDue();
    expect(received).toHaveLength(1);
    const filedHook = received[0]!;
    expect(filedHook.path).toBe('/approver');
    const nowSeconds = Math.floor(t.clock.now().getTime() / 1000);
    expect(
      verifyWebhookSignature(approverSecret, filedHook.body, filedHook.signature, nowSeconds),
    ).toBe(true);
    expect(
      verifyWebhookSignature(vendorSecret, filedHook.body, filedHook.signature, nowSeconds),
    ).toBe(false);
    expect(JSON.parse(filedHook.body)).toMatchObject({
      type: 'access_request.created',
      data: { requestId: filed.body.id, requester: 'vera', reason: 'Valve check' },
    });

    await t.call('POST', `/api/v1/requests/${filed.body.id}/approve`, {
      token: approver.token,
      body: {},
    });
    await t.jobs.runDue();
    const vendorHooks = received
      .filter((r) => r.path === '/vendor')
      .map((r) => JSON.parse(r.body) as { type: string });
    expect(vendorHooks.map((h) => h.type)).toEqual(
      expect.arrayContaining(['access_request.approved', 'grant.activated']),
    );
    for (const hook of received.filter((r) => r.path === '/vendor')) {
      expect(
        verifyWebhookSignature(
          vendorSecret,
          hook.body,
          hook.signature,
          Math.floor(t.clock.now().getTime() / 1000),
        ),
      ).toBe(true);
    }
  });

  it('refuses webhook URLs that are not absolute http(s)', async () => {
    const vendor = await t.user('viktor', ['vendor'], { organization: 'Nordwerk' });
    for (const url of ['ftp://x.example/hook', 'not a url', 'https://user:pw@x.example/hook']) {
      const res = await t.call('PUT', '/api/v1/me/webhook', { token: vendor.token, body: { url } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('webhook.invalid_url');
    }
  });

  it('refuses a webhook address inside the plant’s networks at configuration, unless listed', async () => {
    const vendor = await t.user('vanja', ['vendor'], { organization: 'Nordwerk' });
    for (const url of ['http://10.1.2.3/hook', 'http://169.254.169.254/', 'http://[::1]:8080/x']) {
      const res = await t.call('PUT', '/api/v1/me/webhook', { token: vendor.token, body: { url } });
      expect(res.status, url).toBe(400);
      expect(res.body.error.code, url).toBe('webhook.address_not_allowed');
    }
    const listed = await t.call('PUT', '/api/v1/me/webhook', {
      token: vendor.token,
      body: { url: 'http://127.0.0.1:9/hook' },
    });
    expect(listed.status).toBe(200);
  });
});
