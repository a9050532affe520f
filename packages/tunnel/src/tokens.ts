/**
 * The two signed tokens of the tunnel, both EdDSA JWTs with the algorithm
 * pinned by the verifier (RFC 8725 §3.1) and a distinct `typ` (RFC 8725 §3.11),
 * so neither can be passed off as the other or as an API access token:
 *
 * - the connector assertion (`airlock-connector+jwt`): the connector proves it
 *   holds the key it enrolled, on every WebSocket upgrade. iss = sub = the
 *   connector id, aud = the broker deployment, lifetime ≤ 60 s, a unique jti
 *   that the broker stores until expiry so a captured assertion cannot be replayed;
 * - the grant token (`airlock-grant+jwt`): the broker tells a connector that a
 *   session under an approved grant may reach one asset port now. aud = the
 *   zone id, so a connector of another zone refuses it; the connector checks it
 *   with the broker's public key it pinned at enrolment.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, exportJWK, jwtVerify, SignJWT } from 'jose';

const ALGORITHM = 'EdDSA';
export const ASSERTION_TYPE = 'airlock-connector+jwt';
export const GRANT_TOKEN_TYPE = 'airlock-grant+jwt';
/** An assertion lives at most this long; the broker refuses longer ones. */
export const MAX_ASSERTION_SECONDS = 60;
/** A grant token lives at most this long: it only has to reach the connector. */
export const GRANT_TOKEN_SECONDS = 60;
const MAX_TOKEN_LENGTH = 4096;
const CLOCK_TOLERANCE_SECONDS = 5;
export const GRANT_TOKEN_ISSUER = 'airlock-broker';

export type TokenRefusal =
  'malformed' | 'signature' | 'expired' | 'claims' | 'replayed' | 'unknown_connector';

/** Why a token was refused; `reason` is for the audit trail, never for the peer. */
export class TokenRefusedError extends Error {
  constructor(
    readonly reason: TokenRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'TokenRefusedError';
  }
}

function assertEd25519(key: KeyObject, type: 'private' | 'public', what: string): void {
  if (key.type !== type || key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${what} must be an Ed25519 ${type} key`);
}

/** A stable identifier of the broker deployment: the JWK thumbprint (RFC 7638) of its grant key. */
export async function brokerAudience(grantPublicKey: KeyObject): Promise<string> {
  assertEd25519(grantPublicKey, 'public', 'grantPublicKey');
  return `airlock:${await calculateJwkThumbprint(await exportJWK(grantPublicKey))}`;
}

export function publicKeyToPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

/** Reads an Ed25519 public key in SPKI PEM; throws on anything else. */
export function publicKeyFromPem(pem: string): KeyObject {
  if (typeof pem !== 'string' || pem.length > 1000) throw new Error('not an SPKI PEM key');
  const key = createPublicKey({ key: pem, format: 'pem' });
  assertEd25519(key, 'public', 'the key');
  return key;
}

function refusal(err: unknown): TokenRefusedError {
  if (err instanceof TokenRefusedError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (code === 'ERR_JWT_EXPIRED') return new TokenRefusedError('expired', 'the token has expired');
  if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
    return new TokenRefusedError('signature', 'the signature does not verify');
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED')
    return new TokenRefusedError('claims', `a claim is invalid: ${(err as Error).message}`);
  return new TokenRefusedError('malformed', `the token is malformed: ${(err as Error).message}`);
}

// ---------------------------------------------------------------- connector assertions

export type AssertionPurpose = 'control' | 'stream';

export interface AssertionClaims {
  readonly connectorId: string;
  readonly purpose: AssertionPurpose;
  /** For `stream`: the stream it claims. */
  readonly streamId: string | null;
  readonly jti: string;
  readonly expiresAt: Date;
}

export async function signAssertion(options: {
  privateKey: KeyObject;
  connectorId: string;
  audience: string;
  purpose: AssertionPurpose;
  streamId?: string;
  now?: Date;
  ttlSeconds?: number;
}): Promise<string> {
  assertEd25519(options.privateKey, 'private', 'privateKey');
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const ttl = options.ttlSeconds ?? 30;
  return new SignJWT({
    purpose: options.purpose,
    ...(options.streamId === undefined ? {} : { stream: options.streamId }),
  })
    .setProtectedHeader({ alg: ALGORITHM, typ: ASSERTION_TYPE })
    .setIssuer(options.connectorId)
    .setSubject(options.connectorId)
    .setAudience(options.audience)
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .sign(options.privateKey);
}

/** The connector an assertion claims to come from, before anything is verified (to look up its key). */
export function assertionSubject(token: string): string {
  try {
    if (token.length > MAX_TOKEN_LENGTH) throw new Error('too long');
    const { sub } = decodeJwt(token);
    if (typeof sub !== 'string' || !/^con_[0-9a-z]{20}$/.test(sub)) throw new Error('no sub');
    return sub;
  } catch (err) {
    throw new TokenRefusedError(
      'malformed',
      `the assertion is malformed: ${(err as Error).message}`,
    );
  }
}

/**
 * Verifies signature, type, audience, issuer = subject = connector, lifetime
 * and purpose. Replay is the caller's check (it needs shared storage): every
 * returned jti must be remembered until `expiresAt` and refused when seen again.
 */
export async function verifyAssertion(
  token: string,
  options: {
    publicKey: KeyObject;
    connectorId: string;
    audience: string;
    purpose: AssertionPurpose;
    now: Date;
  },
): Promise<AssertionClaims> {
  try {
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenRefusedError('malformed', 'too long');
    const { payload } = await jwtVerify(token, options.publicKey, {
      algorithms: [ALGORITHM],
      typ: ASSERTION_TYPE,
      issuer: options.connectorId,
      subject: options.connectorId,
      audience: options.audience,
      currentDate: options.now,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: MAX_ASSERTION_SECONDS,
      requiredClaims: ['jti', 'iat', 'exp', 'purpose'],
    });
    const { jti, iat, exp, purpose, stream } = payload;
    if (typeof jti !== 'string' || jti.length < 16 || jti.length > 64)
      throw new TokenRefusedError('claims', 'jti is missing or malformed');
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > MAX_ASSERTION_SECONDS)
      throw new TokenRefusedError('claims', `lifetime exceeds ${MAX_ASSERTION_SECONDS} s`);
    if (purpose !== options.purpose)
      throw new TokenRefusedError('claims', `purpose is not ${options.purpose}`);
    if (options.purpose === 'stream' && typeof stream !== 'string')
      throw new TokenRefusedError('claims', 'a stream assertion names no stream');
    return {
      connectorId: options.connectorId,
      purpose: options.purpose,
      streamId: typeof stream === 'string' ? stream : null,
      jti,
      expiresAt: new Date(exp * 1000),
    };
  } catch (err) {
    throw refusal(err);
  }
}

// ---------------------------------------------------------------- grant tokens

export interface GrantTokenClaims {
  readonly zoneId: string;
  readonly grantId: string;
  readonly userId: string;
  readonly sessionId: string;
  readonly streamId: string;
  readonly assetId: string;
  readonly host: string;
  readonly port: number;
  /** The grant's window: the connector refuses outside it, whatever the token's own lifetime. */
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export async function signGrantToken(
  privateKey: KeyObject,
  claims: GrantTokenClaims,
  now: Date = new Date(),
): Promise<string> {
  assertEd25519(privateKey, 'private', 'privateKey');
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({
    gid: claims.grantId,
    sid: claims.sessionId,
    stm: claims.streamId,
    ast: claims.assetId,
    host: claims.host,
    port: claims.port,
    wnb: Math.floor(claims.notBefore.getTime() / 1000),
    wna: Math.floor(claims.notAfter.getTime() / 1000),
  })
    .setProtectedHeader({ alg: ALGORITHM, typ: GRANT_TOKEN_TYPE })
    .setIssuer(GRANT_TOKEN_ISSUER)
    .setSubject(claims.userId)
    .setAudience(claims.zoneId)
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + GRANT_TOKEN_SECONDS)
    .sign(privateKey);
}

/** The grant a connector checks before it dials anything; throws TokenRefusedError. */
export async function verifyGrantToken(
  token: string,
  options: { publicKey: KeyObject; zoneId: string; now: Date },
): Promise<GrantTokenClaims & { readonly jti: string; readonly expiresAt: Date }> {
  try {
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenRefusedError('malformed', 'too long');
    const { payload } = await jwtVerify(token, options.publicKey, {
      algorithms: [ALGORITHM],
      typ: GRANT_TOKEN_TYPE,
      issuer: GRANT_TOKEN_ISSUER,
      audience: options.zoneId,
      currentDate: options.now,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: GRANT_TOKEN_SECONDS,
      requiredClaims: ['sub', 'jti', 'iat', 'exp', 'gid', 'sid', 'stm', 'ast', 'host', 'port'],
    });
    const { sub, jti, exp, gid, sid, stm, ast, host, port, wnb, wna } = payload;
    const strings = { sub, jti, gid, sid, stm, ast, host };
    for (const [name, value] of Object.entries(strings))
      if (typeof value !== 'string' || value.length === 0 || value.length > 253)
        throw new TokenRefusedError('claims', `${name} is not a string`);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new TokenRefusedError('claims', 'port is not a TCP port');
    if (typeof wnb !== 'number' || typeof wna !== 'number' || typeof exp !== 'number')
      throw new TokenRefusedError('claims', 'the window is missing');
    return {
      zoneId: options.zoneId,
      grantId: gid as string,
      userId: sub as string,
      sessionId: sid as string,
      streamId: stm as string,
      assetId: ast as string,
      host: host as string,
      port,
      notBefore: new Date(wnb * 1000),
      notAfter: new Date(wna * 1000),
      jti: jti as string,
      expiresAt: new Date(exp * 1000),
    };
  } catch (err) {
    throw refusal(err);
  }
}
