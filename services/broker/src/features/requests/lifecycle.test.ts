/**
 * The whole access lifecycle over HTTP against real PostgreSQL, with lifecycle
 * jobs run through each transport (in-process, and BullMQ on a real Redis).
 * Time moves only through the injected clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestBroker,
  type JobTransport,
  type TestBroker,
  type TestUser,
} from '../../testing/harness.js';

const HOUR = 3_600_000;

describe.each<JobTransport>(['in-process', 'bullmq'])(
  'access lifecycle (jobs: %s)',
  (transport) => {
    let t: TestBroker;
    let vendor: TestUser;
    let approver1: TestUser;
    let approver2: TestUser;
    let otherZoneApprover: TestUser;
    let vendorApprover: TestUser;
    let zoneA: string;
    let assetA: string;
    let assetB: string;

    beforeAll(async () => {
      t = await createTestBroker({ jobs: transport });
      expect(t.jobs.transport).toBe(transport);
      vendor = await t.user('vera', ['vendor'], { organization: 'Nordwerk Automation' });
      approver1 = await t.user('alice', ['approver']);
      approver2 = await t.user('bruno', ['approver']);
      otherZoneApprover = await t.user('chen', ['approver']);
      vendorApprover = await t.user('dual', ['vendor', 'approver'], { organization: 'In-house' });

      const zone = await t.call('POST', '/api/v1/zones', {
        token: t.admin.token,
        body: {
          name: 'Plant A / Packaging',
          policy: {
            requiredApprovals: 2,
            maxWindowMinutes: 480,
            allowedCapabilities: ['shell', 'exec'],
          },
        },
      });
      expect(zone.status).toBe(201);
      zoneA = zone.body.id;
      const zoneB = await t.call('POST', '/api/v1/zones', {
        token: t.admin.token,
        body: { name: 'Water works', policy: { requiredApprovals: 1 } },
      });
      expect(
        (
          await t.call('PUT', `/api/v1/zones/${zoneA}/approvers`, {
            token: t.admin.token,
            body: { userIds: [approver1.id, approver2.id, vendorApprover.id] },
          })
        ).status,
      ).toBe(200);
      expect(
        (
          await t.call('PUT', `/api/v1/zones/${zoneB.body.id}/approvers`, {
            token: t.admin.token,
            body: { userIds: [otherZoneApprover.id] },
          })
        ).status,
      ).toBe(200);

      const asset = (name: string) =>
        t.call('POST', '/api/v1/assets', {
          token: t.admin.token,
          body: {
            name,
            zoneId: zoneA,
            host: '10.0.0.5',
            port: 502,
            protocol: 'modbus',
            credential: 'sup3r-secret-plc-pass',
          },
        });
      assetA = (await asset('plc-pack-01')).body.id;
      assetB = (await asset('plc-pack-02')).body.id;
    });

    afterAll(async () => t.close());

    it('walks request → approvals → grant → activation → warnings → expiry, every step audited', async () => {
      const start = t.clock.now().getTime();
      const startsAt = new Date(start + HOUR);
      const endsAt = new Date(start + 3 * HOUR);
      const filed = await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: {
          assetIds: [assetA],
          startsAt: startsAt.toISOString(),
          endsAt: endsAt.toISOString(),
          reason: 'Replace filler valve',
          ticket: 'WO-4711',
          capabilities: ['shell'],
        },
      });
      expect(filed.status).toBe(201);
      expect(filed.body.status).toBe('pending');
      const id: string = filed.body.id;

      // One approval leaves it pending.
      const first = await t.call('POST', `/api/v1/requests/${id}/approve`, {
        token: approver1.token,
        body: { comment: 'ok for me' },
      });
      expect(first.status).toBe(200);
      expect(first.body.status).toBe('pending');
      expect(first.body.zones[0].approvals).toBe(1);
      expect(first.body.grantIds).toEqual([]);

      // The requester cannot approve (no approver role) …
      const own = await t.call('POST', `/api/v1/requests/${id}/approve`, {
        token: vendor.token,
        body: {},
      });
      expect(own.status).toBe(403);
      expect(own.body.error.code).toBe('auth.forbidden_role');
      // … an approver of another zone cannot …
      const other = await t.call('POST', `/api/v1/requests/${id}/approve`, {
        token: otherZoneApprover.token,
        body: {},
      });
      expect(other.status).toBe(403);
      expect(other.body.error.code).toBe('access_request.not_zone_approver');
      // … and nobody decides twice.
      const twice = await t.call('POST', `/api/v1/requests/${id}/approve`, {
        token: approver1.token,
        body: {},
      });
      expect(twice.status).toBe(409);
      expect(twice.body.error.code).toBe('access_request.already_decided');

      // The second distinct approval creates the grant, scheduled for startsAt.
      const second = await t.call('POST', `/api/v1/requests/${id}/approve`, {
        token: approver2.token,
        body: {},
      });
      expect(second.status).toBe(200);
      expect(second.body.status).toBe('approved');
      expect(second.body.grantIds).toHaveLength(1);
      const grantId: string = second.body.grantIds[0];

      const scheduled = await t.call('GET', `/api/v1/grants/${grantId}`, { token: vendor.token });
      expect(scheduled.body).toMatchObject({
        status: 'scheduled',
        notBefore: startsAt.toISOString(),
        notAfter: endsAt.toISOString(),
      });
      await t.jobs.runDue();
      expect(await t.auditTypes()).not.toContain('grant.activated');

      t.clock.set(startsAt);
      await t.jobs.runDue();
      expect(
        (await t.call('GET', `/api/v1/grants/${grantId}`, { token: vendor.token })).body.status,
      ).toBe('active');
      expect(await t.auditTypes()).toContain('grant.activated');
      const active = await t.call('GET', '/api/v1/grants?status=active', { token: vendor.token });
      expect(active.body.grants.map((g: { id: string }) => g.id)).toEqual([grantId]);

      t.clock.set(endsAt.getTime() - 5 * 60_000);
      await t.jobs.runDue();
      t.clock.set(endsAt.getTime() - 60_000);
      await t.jobs.runDue();
      const warnings = await t.call(
        'GET',
        `/api/v1/audit?type=grant.expiring&subjectId=${grantId}`,
        { token: t.admin.token },
      );
      expect(
        warnings.body.events.map((e: { data: { minutesLeft: number } }) => e.data.minutesLeft),
      ).toEqual([5, 1]);

      // Just before notAfter the grant still holds; at notAfter it is over.
      t.clock.set(endsAt.getTime() - 1);
      expect(
        (await t.call('GET', `/api/v1/grants/${grantId}`, { token: vendor.token })).body.status,
      ).toBe('active');
      t.clock.set(endsAt);
      expect(
        (await t.call('GET', `/api/v1/grants/${grantId}`, { token: vendor.token })).body.status,
      ).toBe('expired');
      await t.jobs.runDue();
      expect(await t.auditTypes()).toContain('grant.expired');
      const late = await t.call('POST', `/api/v1/grants/${grantId}/revoke`, {
        token: approver1.token,
        body: { reason: 'too late' },
      });
      expect(late.status).toBe(412);
      expect(late.body.error.code).toBe('grant.already_expired');

      const types = await t.auditTypes();
      for (const type of [
        'access_request.created',
        'access_request.approval_recorded',
        'auth.permission_denied',
        'access_request.decision_refused',
        'access_request.approved',
        'grant.created',
        'grant.activated',
        'grant.expiring',
        'grant.expired',
        'grant.revoke_refused',
      ]) {
        expect(types, type).toContain(type);
      }
      const verify = await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token });
      expect(verify.status).toBe(200);
      expect(verify.body).toMatchObject({ ok: true });
      expect(verify.body.events).toBe(types.length);
    });

    it('refuses self-approval even to a requester who is also an approver of the zone', async () => {
      const filed = await t.call('POST', '/api/v1/requests', {
        token: vendorApprover.token,
        body: { assetIds: [assetB], durationMinutes: 60, reason: 'In-house maintenance' },
      });
      expect(filed.status).toBe(201);
      const self = await t.call('POST', `/api/v1/requests/${filed.body.id}/approve`, {
        token: vendorApprover.token,
        body: {},
      });
      expect(self.status).toBe(403);
      expect(self.body.error.code).toBe('access_request.self_approval');
      const refused = await t.call(
        'GET',
        `/api/v1/audit?type=access_request.decision_refused&subjectId=${filed.body.id}`,
        { token: t.admin.token },
      );
      expect(refused.body.events[0].data.reason).toBe('access_request.self_approval');
    });

    it('starts a duration request at the final approval, narrowed by an approver', async () => {
      const filed = await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: { assetIds: [assetA, assetB], durationMinutes: 120, reason: 'Firmware check' },
      });
      const id: string = filed.body.id;
      await t.call('POST', `/api/v1/requests/${id}/approve`, { token: approver1.token, body: {} });
      t.clock.advance(10 * 60_000);
      const approvedAt = t.clock.now();
      const narrowedEnd = new Date(approvedAt.getTime() + 30 * 60_000);
      const second = await t.call('POST', `/api/v1/requests/${id}/approve`, {
        token: approver2.token,
        body: { notAfter: narrowedEnd.toISOString() },
      });
      expect(second.body.status).toBe('approved');
      expect(second.body.grantIds).toHaveLength(2);
      const grant = await t.call('GET', `/api/v1/grants/${second.body.grantIds[0]}`, {
        token: vendor.token,
      });
      expect(grant.body).toMatchObject({
        status: 'active',
        notBefore: approvedAt.toISOString(),
        notAfter: narrowedEnd.toISOString(),
      });
    });

    it('revocation ends a grant at once, cancels its jobs, and only the zone’s approvers or an admin may do it', async () => {
      const filed = await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: { assetIds: [assetA], durationMinutes: 60, reason: 'Alarm review' },
      });
      await t.call('POST', `/api/v1/requests/${filed.body.id}/approve`, {
        token: approver1.token,
        body: {},
      });
      const approved = await t.call('POST', `/api/v1/requests/${filed.body.id}/approve`, {
        token: approver2.token,
        body: {},
      });
      const grantId: string = approved.body.grantIds[0];
      await t.jobs.runDue();

      const outsider = await t.call('POST', `/api/v1/grants/${grantId}/revoke`, {
        token: otherZoneApprover.token,
        body: { reason: 'not mine' },
      });
      expect(outsider.status).toBe(403);
      const byVendor = await t.call('POST', `/api/v1/grants/${grantId}/revoke`, {
        token: vendor.token,
        body: { reason: 'x' },
      });
      expect(byVendor.status).toBe(403);

      const revoked = await t.call('POST', `/api/v1/grants/${grantId}/revoke`, {
        token: approver1.token,
        body: { reason: 'Process upset on line 1' },
      });
      expect(revoked.status).toBe(200);
      expect(revoked.body).toMatchObject({
        status: 'revoked',
        revokedBy: approver1.id,
        revokeReason: 'Process upset on line 1',
      });
      expect(
        (await t.call('GET', `/api/v1/grants/${grantId}`, { token: vendor.token })).body.status,
      ).toBe('revoked');
      const again = await t.call('POST', `/api/v1/grants/${grantId}/revoke`, {
        token: t.admin.token,
        body: { reason: 'again' },
      });
      expect(again.body.error.code).toBe('grant.already_revoked');

      t.clock.advance(2 * HOUR);
      await t.jobs.runDue();
      const expired = await t.call('GET', `/api/v1/audit?type=grant.expired&subjectId=${grantId}`, {
        token: t.admin.token,
      });
      expect(expired.body.events).toEqual([]);
      expect((await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token })).body.ok).toBe(
        true,
      );
    });

    it('denies on any deny, and expires requests nobody decides on', async () => {
      const denied = await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: { assetIds: [assetA], durationMinutes: 30, reason: 'Check' },
      });
      await t.call('POST', `/api/v1/requests/${denied.body.id}/approve`, {
        token: approver1.token,
        body: {},
      });
      const deny = await t.call('POST', `/api/v1/requests/${denied.body.id}/deny`, {
        token: approver2.token,
        body: { reason: 'Line running a batch' },
      });
      expect(deny.body).toMatchObject({
        status: 'denied',
        decisionReason: 'Line running a batch',
        grantIds: [],
      });

      const ignored = await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: { assetIds: [assetA], durationMinutes: 30, reason: 'Later' },
      });
      const expiresAt = new Date(ignored.body.expiresAt);
      t.clock.set(expiresAt);
      await t.jobs.runDue();
      const after = await t.call('GET', `/api/v1/requests/${ignored.body.id}`, {
        token: vendor.token,
      });
      expect(after.body.status).toBe('expired');
      const late = await t.call('POST', `/api/v1/requests/${ignored.body.id}/approve`, {
        token: approver1.token,
        body: {},
      });
      expect(late.status).toBe(412);
      expect(late.body.error.code).toBe('access_request.not_pending');
      expect(await t.auditTypes()).toContain('access_request.expired');
    });

    it('shows each role only what it may see', async () => {
      const other = await t.user(`olaf-${transport.replace('-', '')}`, ['vendor'], {
        organization: 'Other GmbH',
      });
      const mine = await t.call('GET', '/api/v1/requests', { token: other.token });
      expect(mine.body.requests).toEqual([]);
      const someone = (await t.call('GET', '/api/v1/requests', { token: vendor.token })).body
        .requests[0].id;
      expect(
        (await t.call('GET', `/api/v1/requests/${someone}`, { token: other.token })).status,
      ).toBe(404);
      expect((await t.call('GET', '/api/v1/grants', { token: other.token })).body.grants).toEqual(
        [],
      );
      expect(
        (await t.call('GET', '/api/v1/requests', { token: otherZoneApprover.token })).body.requests,
      ).toEqual([]);
      expect(
        (await t.call('GET', '/api/v1/requests', { token: approver1.token })).body.requests.length,
      ).toBeGreaterThan(0);

      const auditor = await t.user(`audrey-${transport.replace('-', '')}`, ['auditor']);
      expect(
        (await t.call('GET', '/api/v1/requests', { token: auditor.token })).body.requests.length,
      ).toBeGreaterThan(0);
      const write = await t.call('POST', '/api/v1/zones', {
        token: auditor.token,
        body: { name: 'Nope' },
      });
      expect(write.status).toBe(403);
      expect(
        (
          await t.call('POST', '/api/v1/requests', {
            token: auditor.token,
            body: { assetIds: [assetA], durationMinutes: 5, reason: 'x' },
          })
        ).status,
      ).toBe(403);
    });
  },
);
