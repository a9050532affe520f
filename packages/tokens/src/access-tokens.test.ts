import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, isAppError } from '@airlock/domain';
import { deriveEd25519KeyPair, parseMasterKey } from '@airlock/crypto';
import { AccessTokens } from './index.js';

const ISSUER = 'https://airlock.example';
const AUDIENCE = 'airlock-api';
const TTL = 900;
const START = '2030-01-01T00:00:00Z';
const keys = deriveEd25519KeyPair(parseMasterKey('a'.repeat(64)), 'access-tokens');
const claims = {
  userId: 'usr_0123456789abcdefghjk',
  sessionId: 'aus_0123456789abcdefghjk',
  mfa: true,
  scope: 'full',
} as const;

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

async function expectInvalid(promise: Promise<unknown>): Promise<unknown> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(
    isAppError(err, 'auth.token_invalid'),
    `expected auth.token_invalid, got ${String(err)}`,
  ).toBe(true);
  expect((err as Error).message).toBe(
    'The session token is invalid or has expired; sign in again.',
  );
  return (err as Error).cause;
}

describe('AccessTokens', () => {
  let clock: ManualClock;
  let tokens: AccessTokens;
  const nowSeconds = (): number => Math.floor(clock.now().getTime() / 1000);

  /** The claims this service would put in a token, for crafting variants of one. */
  const wirePayload = (): Record<string, unknown> => ({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: claims.userId,
    sid: claims.sessionId,
    mfa: true,
    scope: 'full',
    jti: 'abc',
    iat: nowSeconds(),
    nbf: nowSeconds(),
    exp: nowSeconds() + TTL,
  });

  /** Signs header.payload with our real private key, so only the variation under test is wrong. */
  const signRaw = (
    header: Record<string, unknown>,
    payload: Record<string, unknown>,
    key: KeyObject = keys.privateKey,
  ): string => {
    const input = `${b64url(header)}.${b64url(payload)}`;
    return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
  };

  beforeEach(() => {
    clock = new ManualClock(START);
    tokens = new AccessTokens({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: TTL, clock });
  });

  it('round-trips the claims', async () => {
    const { token, expiresAt } = await tokens.issue(claims);
    expect(expiresAt.toISOString()).toBe('2030-01-01T00:15:00.000Z');
    clock.advance(60_000);
    const verified = await tokens.verify(token);
    expect(verified).toEqual({
      userId: claims.userId,
      sessionId: claims.sessionId,
      mfa: true,
      scope: 'full',
      issuedAt: new Date(START),
      expiresAt,
    });
    const enrolment = await tokens.issue({ ...claims, mfa: false, scope: 'totp_enrollment' });
    await expect(tokens.verify(enrolment.token)).resolves.toMatchObject({
      mfa: false,
      scope: 'totp_enrollment',
    });
  });

  it('puts the RFC 9068 header and the documented claims on the wire', async () => {
    const { token } = await tokens.issue(claims);
    const [header = '', payload = ''] = token.split('.');
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({
      alg: 'EdDSA',
      typ: 'at+jwt',
    });
    const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    expect(body).toMatchObject({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: claims.userId,
      sid: claims.sessionId,
      mfa: true,
      scope: 'full',
    });
    expect(body.iat).toBe(nowSeconds());
    expect(body.nbf).toBe(nowSeconds());
    expect(body.exp).toBe(nowSeconds() + TTL);
    expect(body.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const again = JSON.parse(
      Buffer.from((await tokens.issue(claims)).token.split('.')[1] ?? '', 'base64url').toString(),
    ) as {
      jti: string;
    };
    expect(again.jti).not.toBe(body.jti);
  });

  it('verifies on another replica that derives the same key from the same master key', async () => {
    const { token } = await tokens.issue(claims);
    const replicaKeys = deriveEd25519KeyPair(parseMasterKey('a'.repeat(64)), 'access-tokens');
    const replica = new AccessTokens({
      keys: replicaKeys,
      issuer: ISSUER,
      audience: AUDIENCE,
      ttlSeconds: TTL,
      clock,
    });
    await expect(replica.verify(token)).resolves.toMatchObject({ userId: claims.userId });
  });

  it('refuses an expired token', async () => {
    const { token } = await tokens.issue(claims);
    clock.advance((TTL - 1) * 1000);
    await expect(tokens.verify(token)).resolves.toMatchObject({ userId: claims.userId });
    // Past the TTL and the few seconds of tolerated clock difference between replicas.
    clock.advance(10_000);
    const cause = await expectInvalid(tokens.verify(token));
    expect((cause as { code?: string }).code).toBe('ERR_JWT_EXPIRED');
  });

  it('refuses a token used before it was issued (beyond clock tolerance)', async () => {
    const { token } = await tokens.issue(claims);
    clock.advance(-60_000);
    await expectInvalid(tokens.verify(token));
  });

  it('refuses a token whose lifetime is longer than the one this service issues', async () => {
    const long = await new AccessTokens({
      keys,
      issuer: ISSUER,
      audience: AUDIENCE,
      ttlSeconds: 30 * 86_400,
      clock,
    }).issue(claims);
    clock.advance((TTL + 60) * 1000);
    await expectInvalid(tokens.verify(long.token));
  });

  it('refuses a token signed by another key', async () => {
    const other = generateKeyPairSync('ed25519');
    const foreign = new AccessTokens({
      keys: other,
      issuer: ISSUER,
      audience: AUDIENCE,
      ttlSeconds: TTL,
      clock,
    });
    const { token } = await foreign.issue(claims);
    await expectInvalid(tokens.verify(token));
    await expectInvalid(
      tokens.verify(signRaw({ alg: 'EdDSA', typ: 'at+jwt' }, wirePayload(), other.privateKey)),
    );
  });

  it('refuses alg "none"', async () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(wirePayload())}.`;
    await expectInvalid(tokens.verify(unsigned));
  });

  it('refuses HS256 signed with the public key bytes (algorithm confusion)', async () => {
    const header = { alg: 'HS256', typ: 'at+jwt' };
    for (const secret of [
      keys.publicKey.export({ format: 'der', type: 'spki' }),
      Buffer.from(keys.publicKey.export({ format: 'pem', type: 'spki' })),
      Buffer.from(keys.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url'),
    ]) {
      const input = `${b64url(header)}.${b64url(wirePayload())}`;
      const forged = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      await expectInvalid(tokens.verify(forged));
    }
    // The same through jose, which also refuses to sign HS256 with an asymmetric key object.
    const viaJose = await new SignJWT(wirePayload())
      .setProtectedHeader(header)
      .sign(keys.publicKey.export({ format: 'der', type: 'spki' }));
    await expectInvalid(tokens.verify(viaJose));
  });

  it('refuses a wrong audience or issuer', async () => {
    const elsewhere = (issuer: string, audience: string): AccessTokens =>
      new AccessTokens({ keys, issuer, audience, ttlSeconds: TTL, clock });
    await expectInvalid(
      tokens.verify((await elsewhere(ISSUER, 'connector:zon_x').issue(claims)).token),
    );
    await expectInvalid(
      tokens.verify((await elsewhere('https://evil.example', AUDIENCE).issue(claims)).token),
    );
  });

  it('refuses a wrong or missing typ', async () => {
    await expect(
      tokens.verify(signRaw({ alg: 'EdDSA', typ: 'at+jwt' }, wirePayload())),
    ).resolves.toBeDefined();
    await expectInvalid(tokens.verify(signRaw({ alg: 'EdDSA', typ: 'JWT' }, wirePayload())));
    await expectInvalid(tokens.verify(signRaw({ alg: 'EdDSA', typ: 'grant+jwt' }, wirePayload())));
    await expectInvalid(tokens.verify(signRaw({ alg: 'EdDSA' }, wirePayload())));
  });

  it('refuses a tampered payload', async () => {
    const { token } = await tokens.issue({ ...claims, scope: 'totp_enrollment', mfa: false });
    const [header, payload = '', signature] = token.split('.');
    const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    for (const change of [
      { scope: 'full' },
      { mfa: true },
      { sub: 'usr_zzzzzzzzzzzzzzzzzzzz' },
      { exp: nowSeconds() + 86_400 },
    ]) {
      await expectInvalid(
        tokens.verify(`${header}.${b64url({ ...body, ...change })}.${signature}`),
      );
    }
  });

  it('refuses missing or mistyped claims even when correctly signed', async () => {
    const variants: Record<string, unknown>[] = [
      { mfa: 'true' },
      { mfa: undefined },
      { scope: 'admin' },
      { sid: 42 },
      { sid: undefined },
      { sub: '' },
      { jti: undefined },
      { nbf: undefined },
      { exp: undefined },
      { iat: '0' },
      { aud: undefined },
    ];
    for (const change of variants) {
      await expectInvalid(
        tokens.verify(signRaw({ alg: 'EdDSA', typ: 'at+jwt' }, { ...wirePayload(), ...change })),
      );
    }
  });

  it('refuses garbage', async () => {
    for (const garbage of [
      '',
      'abc',
      'a.b.c',
      `${'a'.repeat(5000)}.b.c`,
      (await tokens.issue(claims)).token.slice(0, -2),
    ]) {
      await expectInvalid(tokens.verify(garbage));
    }
  });

  it('refuses keys that are not Ed25519', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(
      () =>
        new AccessTokens({ keys: rsa, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: TTL, clock }),
    ).toThrow(/Ed25519/);
    const swapped = { privateKey: keys.publicKey, publicKey: keys.privateKey };
    expect(
      () =>
        new AccessTokens({
          keys: swapped,
          issuer: ISSUER,
          audience: AUDIENCE,
          ttlSeconds: TTL,
          clock,
        }),
    ).toThrow(/Ed25519/);
  });
});
