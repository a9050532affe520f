import { afterAll, beforeAll, it } from 'vitest';
import { createTestBroker, type TestBroker } from '../testing/harness.js';

let t: TestBroker;
beforeAll(async () => {
  t = await createTestBroker({ config: { bodyLimitBytes: 4096 } });
});
afterAll(async () => t.close());

it('probe', async () => {
  const log = (l: string, r: { status: number; body: unknown; headers?: unknown }) =>
    console.log(l, r.status, JSON.stringify(r.body).slice(0, 250));
  const vendor = await t.user('vv', ['vendor'], { organization: 'O' });
  const appr = await t.user('ap', ['approver']);
  const z = await t.call('POST', '/api/v1/zones', {
    token: t.admin.token,
    body: { name: 'zone1' },
  });
  await t.call('PUT', `/api/v1/zones/${z.body.id}/approvers`, {
    token: t.admin.token,
    body: { userIds: [appr.id] },
  });
  const a = await t.call('POST', '/api/v1/assets', {
    token: t.admin.token,
    body: { name: 'a1', zoneId: z.body.id, host: '10.0.0.1', port: 502, protocol: 'modbus' },
  });
  for (const d of [
    '2026-03-02T10:59:60Z',
    '2026-03-02T23:59:60Z',
    '2026-02-30T10:00:00Z',
    '2026-03-02t10:00:00z',
    '2026-03-02T10:00:00+23:59',
    '+275760-09-13T00:00:00Z',
    '2026-03-02 10:00:00Z',
  ]) {
    log(
      'req ' + d,
      await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: { assetIds: [a.body.id], endsAt: d, reason: 'r' },
      }),
    );
  }
  const r = await t.call('POST', '/api/v1/requests', {
    token: vendor.token,
    body: {
      assetIds: [a.body.id],
      startsAt: '2026-03-02T09:00:00Z',
      endsAt: '2026-03-02T12:00:00Z',
      reason: 'r',
    },
  });
  log('req', r);
  for (const d of ['2026-03-02T10:59:60Z', '2026-03-02T23:59:60Z', '0000-01-01T00:00:00Z']) {
    log(
      'appr nb ' + d,
      await t.call('POST', `/api/v1/requests/${r.body.id}/approve`, {
        token: appr.token,
        body: { notBefore: d },
      }),
    );
    log(
      'appr na ' + d,
      await t.call('POST', `/api/v1/requests/${r.body.id}/approve`, {
        token: appr.token,
        body: { notAfter: d },
      }),
    );
    log(
      'audit ' + d,
      await t.call('GET', `/api/v1/audit?from=${encodeURIComponent(d)}`, { token: t.admin.token }),
    );
  }
  log('audit nul', await t.call('GET', `/api/v1/audit?type=%00`, { token: t.admin.token }));
  log(
    'xml',
    await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      headers: { 'content-type': 'application/xml' },
      body: '<a/>',
    }),
  );
  log(
    'form',
    await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=x',
    }),
  );
  log(
    'json charset',
    await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: '{"name":"cs"}',
    }),
  );
  log(
    'badid',
    await t.call('GET', '/api/v1/assets/zon_aaaaaaaaaaaaaaaaaaaa', { token: t.admin.token }),
  );
  log('unk', await t.call('GET', '/api/v1/nope', { token: t.admin.token }));
  log('unk2', await t.call('DELETE', '/api/v1/zones', { token: t.admin.token }));
  const spec = await t.call('GET', '/api/v1/openapi.json');
  console.log(
    Object.entries(spec.body.paths)
      .map(([p, v]) => `${Object.keys(v as object).join(',')} ${p}`)
      .join('\n'),
  );
});
