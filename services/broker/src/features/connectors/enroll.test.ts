import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { brokerAudience, publicKeyFromPem, publicKeyToPem } from '@airlock/tunnel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rememberAssertion } from '../../connectors/repository.js';
import { createTestBroker, type TestBroker } from '../../testing/harness.js';

describe('connector enrolment', () => {
  let t: TestBroker;
  let zoneId: string;

  beforeAll(async () => {
    t = await createTestBroker();
    const zone = await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      body: { name: 'Plant C', policy: { requiredApprovals: 1 } },
    });
    zoneId = zone.body.id;
  });
  afterAll(async () => t.close());

  const register = async (name: string) =>
    (
      await t.call('POST', '/api/v1/connectors', {
        token: t.admin.token,
        body: { name, zoneId },
      })
    ).body as { id: string; enrollmentToken: string };

  const enrol = (token: string, publicKey: string) =>
    t.call('POST', '/api/v1/connectors/enroll', {
      body: { token, publicKey, version: '0.1.0' },
    });

  it('stores the key, burns the token in the same transaction, and returns the pinned broker key', async () => {
    const created = await register('gw-1');
    const { publicKey } = generateKeyPairSync('ed25519');
    const res = await enrol(created.enrollmentToken, publicKeyToPem(publicKey));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ connectorId: created.id, zoneId, name: 'gw-1' });
    // The answer is the broker's grant key and the deployment audience derived from it.
    const pinned = publicKeyFromPem(res.body.brokerPublicKey);
    expect(pinned.equals(t.ctx.connectorKeys.publicKey)).toBe(true);
    expect(res.body.audience).toBe(await brokerAudience(t.ctx.connectorKeys.publicKey));
    const { rows } = await t.db.pool.query(
      'select public_key, enrolled_at, status from connectors where id = $1',
      [created.id],
    );
    expect(rows[0]).toMatchObject({ public_key: publicKeyToPem(publicKey), status: 'offline' });

    const again = await enrol(
      created.enrollmentToken,
      publicKeyToPem(generateKeyPairSync('ed25519').publicKey),
    );
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('connector.enrollment_invalid');
    const unknown = await enrol(
      `alenr_${randomBytes(32).toString('base64url')}`,
      publicKeyToPem(publicKey),
    );
    expect(unknown.body.error).toEqual(again.body.error);
    const { rows: events } = await t.db.pool.query(
      `select data->>'reason' as reason from audit_events where type = 'connector.enrollment_refused' order by seq`,
    );
    expect(events.map((e) => e.reason)).toEqual(['already_used', 'unknown_token']);
  });

  it('refuses a key that is not Ed25519, and fields it does not know', async () => {
    const created = await register('gw-2');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const res = await enrol(created.enrollmentToken, publicKeyToPem(rsa));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('connector.public_key_invalid');
    const extra = await t.call('POST', '/api/v1/connectors/enroll', {
      body: { token: created.enrollmentToken, publicKey: 'x', version: '1', zoneId },
    });
    expect(extra.status).toBe(400);
    // Neither attempt used up the token.
    const ok = await enrol(
      created.enrollmentToken,
      publicKeyToPem(generateKeyPairSync('ed25519').publicKey),
    );
    expect(ok.status).toBe(200);
  });

  it('remembers an assertion id once, for every replica sharing the database', async () => {
    const created = await register('gw-3');
    await enrol(created.enrollmentToken, publicKeyToPem(generateKeyPairSync('ed25519').publicKey));
    const jti = randomBytes(16).toString('base64url');
    const expires = new Date(Date.now() + 30_000);
    expect(await rememberAssertion(t.db.pool, jti, created.id, expires)).toBe(true);
    expect(await rememberAssertion(t.db.pool, jti, created.id, expires)).toBe(false);
  });
});
