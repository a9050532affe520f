import { randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { AppError, type Clock } from '@airlock/domain';

export type AccessTokenScope = 'full' | 'totp_enrollment';

const SCOPES: readonly AccessTokenScope[] = ['full', 'totp_enrollment'];

export interface AccessTokenClaims {
  userId: string;
  sessionId: string;
  /** True when the sign-in included a second factor. */
  mfa: boolean;
  /** `totp_enrollment` tokens may only enrol TOTP (a user whose role requires it has not yet). */
  scope: AccessTokenScope;
  issuedAt: Date;
  expiresAt: Date;
}

export interface AccessTokensOptions {
  /** Ed25519 key pair, e.g. `deriveEd25519KeyPair(masterKey, 'access-tokens')`, so every replica verifies every token. */
  keys: { privateKey: KeyObject; publicKey: KeyObject };
  issuer: string;
  audience: string;
  ttlSeconds: number;
  clock: Clock;
  /**
   * Seconds of clock difference between replicas tolerated on `nbf`/`exp`/`iat`:
   * a token issued by one replica may be used at once on another whose clock
   * is slightly behind. Default 5.
   */
  clockToleranceSeconds?: number;
}

/** RFC 8725 §3.1: the verifier pins the algorithm; the header's `alg` chooses nothing. */
const ALGORITHM = 'EdDSA';
/** RFC 9068 §2.1: access tokens are typed `at+jwt`, so no other JWT (ID token, grant) is accepted as one. */
const TOKEN_TYPE = 'at+jwt';
/** Well above any real token; refuses oversized input before any parsing. */
const MAX_TOKEN_LENGTH = 4096;

/**
 * Bearer tokens for the HTTP API: short-lived EdDSA-signed JWTs. The token
 * says who signed in and in which sign-in session; whether that session is
 * still open (signed out, user disabled) is the caller's check against the database.
 */
export class AccessTokens {
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #issuer: string;
  readonly #audience: string;
  readonly #ttlSeconds: number;
  readonly #clock: Clock;
  readonly #clockToleranceSeconds: number;

  constructor(options: AccessTokensOptions) {
    const { keys, issuer, audience, ttlSeconds, clock, clockToleranceSeconds = 5 } = options;
    if (keys.privateKey.type !== 'private' || keys.privateKey.asymmetricKeyType !== 'ed25519') {
      throw new Error('AccessTokens: keys.privateKey must be an Ed25519 private key');
    }
    if (keys.publicKey.type !== 'public' || keys.publicKey.asymmetricKeyType !== 'ed25519') {
      throw new Error('AccessTokens: keys.publicKey must be an Ed25519 public key');
    }
    if (issuer.length === 0 || audience.length === 0)
      throw new Error('AccessTokens: issuer and audience must not be empty');
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)
      throw new Error('AccessTokens: ttlSeconds must be a positive integer');
    if (!Number.isInteger(clockToleranceSeconds) || clockToleranceSeconds < 0) {
      throw new Error('AccessTokens: clockToleranceSeconds must be a non-negative integer');
    }
    this.#privateKey = keys.privateKey;
    this.#publicKey = keys.publicKey;
    this.#issuer = issuer;
    this.#audience = audience;
    this.#ttlSeconds = ttlSeconds;
    this.#clock = clock;
    this.#clockToleranceSeconds = clockToleranceSeconds;
  }

  async issue(claims: {
    userId: string;
    sessionId: string;
    mfa: boolean;
    scope: AccessTokenScope;
  }): Promise<{ token: string; expiresAt: Date }> {
    if (claims.userId.length === 0 || claims.sessionId.length === 0) {
      throw new Error('AccessTokens: userId and sessionId must not be empty');
    }
    if (!SCOPES.includes(claims.scope)) throw new Error('AccessTokens: unknown scope');
    // JWT NumericDate is whole seconds (RFC 7519 §2); expiresAt is reported as the verifier will see it.
    const issuedAt = Math.floor(this.#clock.now().getTime() / 1000);
    const expiresAt = issuedAt + this.#ttlSeconds;
    const token = await new SignJWT({ sid: claims.sessionId, mfa: claims.mfa, scope: claims.scope })
      .setProtectedHeader({ alg: ALGORITHM, typ: TOKEN_TYPE })
      .setIssuer(this.#issuer)
      .setAudience(this.#audience)
      .setSubject(claims.userId)
      .setJti(randomBytes(16).toString('base64url'))
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(this.#privateKey);
    return { token, expiresAt: new Date(expiresAt * 1000) };
  }

  /**
   * Every failure is the same `auth.token_invalid` (a client learns nothing
   * about which check failed); the underlying reason stays on `cause` for logs.
   */
  async verify(token: string): Promise<AccessTokenClaims> {
    try {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH)
        throw new Error('token is not a string or too long');
      const { payload } = await jwtVerify(token, this.#publicKey, {
        algorithms: [ALGORITHM],
        typ: TOKEN_TYPE,
        issuer: this.#issuer,
        audience: this.#audience,
        currentDate: this.#clock.now(),
        clockTolerance: this.#clockToleranceSeconds,
        // Also refuses an `iat` in the future or older than the lifetime we issue,
        // so a token minted with a longer lifetime (a since-lowered TTL) stops working.
        maxTokenAge: this.#ttlSeconds,
        requiredClaims: ['sub', 'sid', 'mfa', 'scope', 'jti', 'iat', 'exp', 'nbf'],
      });
      const { sub, sid, mfa, scope, jti, iat, exp } = payload;
      if (typeof sub !== 'string' || sub.length === 0)
        throw new Error('sub is not a non-empty string');
      if (typeof sid !== 'string' || sid.length === 0)
        throw new Error('sid is not a non-empty string');
      if (typeof mfa !== 'boolean') throw new Error('mfa is not a boolean');
      if (typeof scope !== 'string' || !(SCOPES as readonly string[]).includes(scope))
        throw new Error('scope is unknown');
      if (typeof jti !== 'string' || jti.length === 0)
        throw new Error('jti is not a non-empty string');
      if (typeof iat !== 'number' || typeof exp !== 'number')
        throw new Error('iat or exp is not a number');
      return {
        userId: sub,
        sessionId: sid,
        mfa,
        scope: scope as AccessTokenScope,
        issuedAt: new Date(iat * 1000),
        expiresAt: new Date(exp * 1000),
      };
    } catch (cause) {
      throw new AppError('auth.token_invalid', {}, { cause });
    }
  }
}
