import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  assertionSubject,
  brokerAudience,
  publicKeyFromPem,
  publicKeyToPem,
  signAssertion,
  signGrantToken,
  TokenRefusedError,
  verifyAssertion,
  verifyGrantToken,
  type GrantTokenClaims,
} from './index.js';

const connector = generateKeyPairSync('ed25519');
const broker = generateKeyPairSync('ed25519');
const CONNECTOR_ID = 'con_01234567890123456789';
const NOW = new Date('2030-01-01T00:00:00Z');
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

async function refusedWith(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenRefusedError);
  return (err as TokenRefusedError).reason;
}

describe('connector assertions', () => {
  const verify = async (
    token: string,
    overrides: Partial<Parameters<typeof verifyAssertion>[1]> = {},
  ) =>
    verifyAssertion(token, {
      publicKey: connector.publicKey,
      connectorId: CONNECTOR_ID,
      audience: 'airlock:test',
      purpose: 'control',
      now: NOW,
      ...overrides,
    });

  it('round-trips, with a unique jti each time', async () => {
    const a = await signAssertion({
      privateKey: connector.privateKey,
      connectorId: CONNECTOR_ID,
      audience: 'airlock:test',
      purpose: 'control',
      now: NOW,
    });
    const b = await signAssertion({
      privateKey: connector.privateKey,
      connectorId: CONNECTOR_ID,
      audience: 'airlock:test',
      purpose: 'control',
      now: NOW,
    });
    expect(assertionSubject(a)).toBe(CONNECTOR_ID);
    const va = await verify(a);
    const vb = await verify(b);
    expect(va.jti).not.toBe(vb.jti);
    expect(va.expiresAt.getTime() - NOW.getTime()).toBe(30_000);
  });

  it('refuses a forged, expired, misdirected, overlong or mis-purposed assertion', async () => {
    const other = generateKeyPairSync('ed25519');
    const base = {
      connectorId: CONNECTOR_ID,
      audience: 'airlock:test',
      purpose: 'control' as const,
      now: NOW,
    };
    expect(
      await refusedWith(verify(await signAssertion({ ...base, privateKey: other.privateKey }))),
    ).toBe('signature');
    const old = await signAssertion({
      ...base,
      privateKey: connector.privateKey,
      now: new Date(NOW.getTime() - 120_000),
    });
    expect(await refusedWith(verify(old))).toBe('expired');
    expect(
      await refusedWith(
        verify(await signAssertion({ ...base, privateKey: connector.privateKey, audience: 'x' })),
      ),
    ).toBe('claims');
    expect(
      await refusedWith(
        verify(
          await signAssertion({ ...base, privateKey: connector.privateKey, ttlSeconds: 3600 }),
        ),
      ),
    ).not.toBeNull();
    expect(
      await refusedWith(
        verify(await signAssertion({ ...base, privateKey: connector.privateKey }), {
          purpose: 'stream',
        }),
      ),
    ).toBe('claims');
    // Another connector's id with this key: issuer/subject do not match.
    expect(
      await refusedWith(
        verify(await signAssertion({ ...base, privateKey: connector.privateKey }), {
          connectorId: 'con_zzzzzzzzzzzzzzzzzzzz',
        }),
      ),
    ).toBe('claims');
  });

  it('refuses alg none and HS256 signed with the public key', async () => {
    const payload = {
      iss: CONNECTOR_ID,
      sub: CONNECTOR_ID,
      aud: 'airlock:test',
      jti: 'x'.repeat(22),
      iat: NOW.getTime() / 1000,
      exp: NOW.getTime() / 1000 + 30,
      purpose: 'control',
    };
    const none = `${b64({ alg: 'none', typ: 'airlock-connector+jwt' })}.${b64(payload)}.`;
    await refusedWith(verify(none));
    const input = `${b64({ alg: 'EdDSA', typ: 'at+jwt' })}.${b64(payload)}`;
    const wrongType = `${input}.${sign(null, Buffer.from(input), connector.privateKey).toString('base64url')}`;
    await refusedWith(verify(wrongType));
    expect(() => assertionSubject('garbage')).toThrow(TokenRefusedError);
  });
});

describe('grant tokens', () => {
  const claims: GrantTokenClaims = {
    zoneId: 'zon_aaaaaaaaaaaaaaaaaaaa',
    grantId: 'grt_aaaaaaaaaaaaaaaaaaaa',
    userId: 'usr_aaaaaaaaaaaaaaaaaaaa',
    sessionId: 'ses_aaaaaaaaaaaaaaaaaaaa',
    streamId: 'stm_aaaaaaaaaaaaaaaaaaaa',
    assetId: 'ast_aaaaaaaaaaaaaaaaaaaa',
    host: '10.0.0.5',
    port: 22,
    notBefore: new Date(NOW.getTime() - 60_000),
    notAfter: new Date(NOW.getTime() + 3600_000),
  };
  const pinned = publicKeyFromPem(publicKeyToPem(broker.publicKey));

  it('round-trips for its zone, with the broker key pinned from PEM', async () => {
    const token = await signGrantToken(broker.privateKey, claims, NOW);
    const verified = await verifyGrantToken(token, {
      publicKey: pinned,
      zoneId: claims.zoneId,
      now: NOW,
    });
    expect(verified).toMatchObject({ ...claims });
  });

  it('refuses another zone, another signer and an expired token', async () => {
    const token = await signGrantToken(broker.privateKey, claims, NOW);
    expect(
      await refusedWith(
        verifyGrantToken(token, {
          publicKey: pinned,
          zoneId: 'zon_bbbbbbbbbbbbbbbbbbbb',
          now: NOW,
        }),
      ),
    ).toBe('claims');
    const forged = await signGrantToken(generateKeyPairSync('ed25519').privateKey, claims, NOW);
    expect(
      await refusedWith(
        verifyGrantToken(forged, { publicKey: pinned, zoneId: claims.zoneId, now: NOW }),
      ),
    ).toBe('signature');
    expect(
      await refusedWith(
        verifyGrantToken(token, {
          publicKey: pinned,
          zoneId: claims.zoneId,
          now: new Date(NOW.getTime() + 120_000),
        }),
      ),
    ).toBe('expired');
  });

  it('names the deployment by its key thumbprint', async () => {
    expect(await brokerAudience(broker.publicKey)).toMatch(/^airlock:[A-Za-z0-9_-]{43}$/);
    expect(() =>
      publicKeyFromPem(
        publicKeyToPem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey),
      ),
    ).toThrow();
  });
});
