/**
 * Tampering seen through the API: one byte changed in one stored event, by
 * superuser SQL that bypasses the append-only trigger, makes verify fail and
 * name that event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestBroker, type TestBroker } from '../../testing/harness.js';

describe('audit trail tampering', () => {
  let t: TestBroker;

  beforeAll(async () => {
    t = await createTestBroker();
    await t.user('dana', ['auditor']);
    for (let i = 0; i < 5; i += 1) {
      await t.call('POST', '/api/v1/zones', {
        token: t.admin.token,
        body: { name: `Zone ${i}`, policy: { requiredApprovals: 1 } },
      });
    }
  });
  afterAll(async () => t.close());

  it('refuses UPDATE and DELETE through an ordinary connection', async () => {
    await expect(
      t.db.pool.query(`update audit_events set type = 'user.login' where seq = 1`),
    ).rejects.toThrow(/not allowed/);
    await expect(t.db.pool.query('delete from audit_events where seq = 1')).rejects.toThrow(
      /not allowed/,
    );
  });

  it('names the first altered event, whichever field changed', async () => {
    const ok = await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token });
    expect(ok.body.ok).toBe(true);
    const { rows } = await t.db.pool.query<{ seq: number; id: string; data: { name?: string } }>(
      `select seq, id, data from audit_events where type = 'zone.created' order by seq limit 1 offset 2`,
    );
    const target = rows[0]!;
    // One byte: "Zone 2" becomes "Zone 3".
    await t.db.superuserQuery(
      `set session_replication_role = replica;
       update audit_events set data = jsonb_set(data, '{name}', '"Zone 3"') where seq = ${target.seq};
       set session_replication_role = origin;`,
    );
    const broken = await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token });
    expect(broken.status).toBe(200);
    expect(broken.body.ok).toBe(false);
    expect(broken.body.firstBad).toMatchObject({
      seq: target.seq,
      id: target.id,
      reason: 'hash_mismatch',
    });
    const failed = await t.call('GET', '/api/v1/audit?type=audit.verified&order=desc&limit=1', {
      token: t.admin.token,
    });
    expect(failed.body.events[0]).toMatchObject({
      outcome: 'failure',
      data: { ok: false, firstBadSeq: target.seq },
    });
  });
});
