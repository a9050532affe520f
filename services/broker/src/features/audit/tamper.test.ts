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

describe('signed checkpoints', () => {
  let t: TestBroker;

  beforeAll(async () => {
    t = await createTestBroker();
  });
  afterAll(async () => t.close());

  it('are signed periodically by the checkpoint job, and catch events removed from the tail', async () => {
    const { ensureCheckpointJob } = await import('../../jobs.js');
    await ensureCheckpointJob(t.ctx);
    for (let i = 0; i < 3; i += 1) {
      await t.call('POST', '/api/v1/zones', { token: t.admin.token, body: { name: `Zone ${i}` } });
    }
    t.clock.advance(t.ctx.config.auditCheckpointMinutes * 60_000);
    await t.jobs.runDue();
    const { rows } = await t.db.pool.query<{ seq: number }>(
      'select seq from audit_checkpoints order by seq',
    );
    expect(rows).toHaveLength(1);
    const checkpointSeq = rows[0]!.seq;
    // The job re-arms itself for the next period.
    const next = await t.db.pool.query(
      `select run_at from jobs where kind = 'audit.checkpoint' and state = 'scheduled'`,
    );
    expect(next.rowCount).toBe(1);

    const verified = await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token });
    expect(verified.body).toMatchObject({ ok: true, checkpoint: { seq: checkpointSeq } });

    // Removing the newest events leaves a consistent chain, but the checkpoint remembers the head.
    await t.db.superuserQuery(
      `set session_replication_role = replica;
       delete from audit_events where seq >= ${checkpointSeq - 1};
       set session_replication_role = origin;`,
    );
    const truncated = await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token });
    expect(truncated.body.ok).toBe(false);
    expect(truncated.body.firstBad.reason).toBe('truncated');
  });
});
