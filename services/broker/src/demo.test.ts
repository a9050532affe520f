import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from './demo.js';
import { createTestBroker, type TestBroker } from './testing/harness.js';

describe('demo seed', () => {
  let t: TestBroker;
  beforeAll(async () => {
    t = await createTestBroker();
  });
  afterAll(async () => t.close());

  it('seeds a plausible plant once, every step audited', async () => {
    const lines: string[] = [];
    await seedDemo(t.ctx, (l) => lines.push(l));
    const zones = await t.call('GET', '/api/v1/zones', { token: t.admin.token });
    expect(zones.body.zones.map((z: { name: string }) => z.name)).toEqual([
      'Plant A / Packaging line',
      'Water works / Filtration',
    ]);
    expect(zones.body.zones.every((z: { approverIds: string[] }) => z.approverIds.length > 0)).toBe(
      true,
    );
    const vendors = await t.call('GET', '/api/v1/users?role=vendor', { token: t.admin.token });
    expect(vendors.body.users.map((u: { organization: string }) => u.organization)).toEqual([
      'Nordwerk Automation',
      'Nordwerk Automation',
    ]);
    const assets = await t.call('GET', '/api/v1/assets', { token: t.admin.token });
    expect(assets.body.assets.length).toBeGreaterThanOrEqual(4);
    expect(JSON.stringify(assets.body)).not.toMatch(/credential"\s*:\s*"/);
    const connectors = await t.call('GET', '/api/v1/connectors', { token: t.admin.token });
    expect(connectors.body.connectors).toHaveLength(1);
    expect(lines.join('\n')).toContain('TOTP secret');

    // A demo vendor can sign in and request at once.
    const login = await t.call('POST', '/api/v1/auth/login', {
      body: { username: 'vera', password: 'airlock-demo-pass' },
    });
    expect(login.status).toBe(200);
    const hmi = assets.body.assets.find((a: { name: string }) => a.name === 'hmi-pack-01');
    const filed = await t.call('POST', '/api/v1/requests', {
      token: login.body.token,
      body: { assetIds: [hmi.id], durationMinutes: 60, reason: 'Demo' },
    });
    expect(filed.status).toBe(201);

    await seedDemo(t.ctx, (l) => lines.push(l));
    expect(lines.at(-1)).toMatch(/already exist/);
    expect((await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token })).body.ok).toBe(
      true,
    );
  });
});
