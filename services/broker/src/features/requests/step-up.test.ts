/**
 * Step-up authentication for decisions: the console (session cookie) must
 * confirm every approve and deny with a fresh one-time code; API clients with
 * a bearer token keep working as before and are checked when they send one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../../http/authenticate.js';
import { createTestBroker, type TestBroker, type TestUser } from '../../testing/harness.js';

const HOST = 'airlock.example';

describe('step-up one-time code for approve and deny', () => {
  let t: TestBroker;
  let vendor: TestUser;
  let approver: TestUser;
  let assetId: string;

  const fileRequest = async (): Promise<string> => {
    const res = await t.call('POST', '/api/v1/requests', {
      token: vendor.token,
      body: { assetIds: [assetId], durationMinutes: 60, reason: 'Firmware update' },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };

  /** The console's way: the cookie, from our own origin. */
  const asConsole = (user: TestUser, method: 'POST', url: string, body: unknown) =>
    t.call(method, url, {
      body,
      headers: {
        cookie: `${SESSION_COOKIE}=${user.token}`,
        host: HOST,
        origin: `https://${HOST}`,
      },
    });

  beforeAll(async () => {
    t = await createTestBroker();
    vendor = await t.user('vera', ['vendor'], { organization: 'Nordwerk Automation' });
    approver = await t.user('alice', ['approver']);
    const zone = await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      body: { name: 'Plant A / Packaging', policy: { requiredApprovals: 1 } },
    });
    await t.call('PUT', `/api/v1/zones/${zone.body.id as string}/approvers`, {
      token: t.admin.token,
      body: { userIds: [approver.id] },
    });
    const asset = await t.call('POST', '/api/v1/assets', {
      token: t.admin.token,
      body: {
        name: 'plc-pack-01',
        zoneId: zone.body.id,
        host: '10.0.0.5',
        port: 502,
        protocol: 'modbus',
      },
    });
    assetId = asset.body.id as string;
  });

  afterAll(async () => t.close());

  it('refuses a cookie decision without a code, or with a spent one, and takes a fresh one', async () => {
    const requestId = await fileRequest();
    const approve = `/api/v1/requests/${requestId}/approve`;

    const missing = await asConsole(approver, 'POST', approve, {});
    expect(missing.status).toBe(403);
    expect(missing.body.error.code).toBe('auth.step_up_required');

    // The code of the current step was spent enrolling: a replay is refused and audited.
    const spent = await asConsole(approver, 'POST', approve, { totp: t.totp(approver) });
    expect(spent.status).toBe(403);
    expect(spent.body.error.code).toBe('auth.step_up_failed');
    expect(await t.auditTypes()).toContain('auth.step_up_failed');
    const still = await t.call('GET', `/api/v1/requests/${requestId}`, { token: vendor.token });
    expect(still.body.status).toBe('pending');

    const fresh = await asConsole(approver, 'POST', approve, { totp: t.totp(approver, 1) });
    expect(fresh.status).toBe(200);
    expect(fresh.body.status).toBe('approved');

    // The same code again, on the next decision: spent.
    const next = await fileRequest();
    const again = await asConsole(approver, 'POST', `/api/v1/requests/${next}/deny`, {
      reason: 'Not this week',
      totp: t.totp(approver, 1),
    });
    expect(again.body.error.code).toBe('auth.step_up_failed');
  });

  it('keeps bearer API decisions working without a code, and checks one when sent', async () => {
    const first = await fileRequest();
    const denied = await t.call('POST', `/api/v1/requests/${first}/deny`, {
      token: approver.token,
      body: { reason: 'Outside the maintenance window' },
    });
    expect(denied.status).toBe(200);
    expect(denied.body.status).toBe('denied');

    const second = await fileRequest();
    const wrong = await t.call('POST', `/api/v1/requests/${second}/approve`, {
      token: approver.token,
      body: { totp: t.totp(approver, -1) },
    });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.code).toBe('auth.step_up_failed');
  });
});
