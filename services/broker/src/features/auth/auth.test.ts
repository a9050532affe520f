/**
 * Identity over HTTP against real PostgreSQL (IEC 62443-3-3 SR 1.1, 1.2, 1.5,
 * 1.7, 1.11): sign-in, the session cookie and its CSRF guard, uniform
 * failures, lockout (also under concurrency), TOTP enrolment, replay and
 * reset, logout, refused tokens of every kind, password reset, refresh, and
 * SSH public keys. Time moves only through the injected clock.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, deriveEd25519KeyPair, parseMasterKey } from '@airlock/crypto';
import { ERROR_CATALOGUE, newId, type ErrorCode } from '@airlock/domain';
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from '../../context-factory.js';
import { SESSION_COOKIE } from '../../http/authenticate.js';
import {
  ADMIN_PASSWORD,
  USER_PASSWORD,
  createTestBroker,
  type ApiResponse,
  type TestBroker,
  type TestUser,
} from '../../testing/harness.js';

/**
 * The harness draws a random master key; this file pins one (createTestBroker's
 * `masterKey`) so the tests can derive the broker's real token-signing key. Only then does a token with a
 * wrong audience or issuer differ from a forged one in that single respect.
 */
const MASTER_KEY = Buffer.alloc(32, 0x5a).toString('base64');

const signingKeys = deriveEd25519KeyPair(parseMasterKey(MASTER_KEY), 'access-tokens');
const LOCKOUT_THRESHOLD = 5;
const LOCKOUT_MINUTES = 15;
const HOST = 'airlock.example:8443';
const SAME_ORIGIN = `https://${HOST}`;
const STEP_MS = 30_000;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface AuditRow {
  seq: number;
  type: string;
  actor_kind: string;
  actor_id: string | null;
  subject_id: string | null;
  outcome: string;
  data: Record<string, unknown>;
}

function expectError(res: ApiResponse, status: number, code: ErrorCode): void {
  expect(res.body, `expected ${code}, got ${JSON.stringify(res.body)}`).toMatchObject({
    error: { code },
  });
  expect(res.status).toBe(status);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(Object.keys(res.body.error).sort()).toEqual(['code', 'message']);
  expect(code in ERROR_CATALOGUE).toBe(true);
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

async function signToken(
  payload: Record<string, unknown>,
  key: KeyObject = signingKeys.privateKey,
  header: { alg: string; typ?: string } = { alg: 'EdDSA', typ: 'at+jwt' },
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

function setCookieOf(res: ApiResponse): string[] {
  const raw: unknown = res.headers['set-cookie'];
  if (typeof raw === 'string') return [raw];
  return Array.isArray(raw) ? raw.filter((c): c is string => typeof c === 'string') : [];
}

/** Every JSON key anywhere in a value. */
function keysOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysOf);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => [k, ...keysOf(v)]);
  return [];
}

describe('identity', () => {
  let t: TestBroker;
  /** Every route of the OpenAPI document except the public ones, with a placeholder id. */
  let guardedRoutes: { method: Method; url: string; route: string }[];

  const login = (username: string, password: string, totp?: string) =>
    t.call('POST', '/api/v1/auth/login', {
      body: { username, password, ...(totp === undefined ? {} : { totp }) },
    });

  async function createUser(username: string, roles: string[], organization?: string) {
    const res = await t.call('POST', '/api/v1/users', {
      token: t.admin.token,
      body: {
        username,
        password: USER_PASSWORD,
        roles,
        ...(organization === undefined ? {} : { organization }),
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  }

  async function headSeq(): Promise<number> {
    const { rows } = await t.db.pool.query<{ seq: number }>(
      'select coalesce(max(seq), 0)::bigint as seq from audit_events',
    );
    return rows[0]?.seq ?? 0;
  }

  async function eventsSince(seq: number, type?: string): Promise<AuditRow[]> {
    const { rows } = await t.db.pool.query<AuditRow>(
      `select seq, type, actor_kind, actor_id, subject_id, outcome, data from audit_events
        where seq > $1 and ($2::text is null or type = $2) order by seq`,
      [seq, type ?? null],
    );
    return rows;
  }

  /** A six-digit code that is valid in none of the steps the broker accepts now. */
  function wrongCode(user: TestUser): string {
    const valid = new Set([-1, 0, 1].map((offset) => t.totp(user, offset)));
    let n = Number(t.totp(user));
    let code: string;
    do {
      n = (n + 123_457) % 1_000_000;
      code = String(n).padStart(6, '0');
    } while (valid.has(code));
    return code;
  }

  beforeAll(async () => {
    t = await createTestBroker({ masterKey: MASTER_KEY });
    const spec = await t.call('GET', '/api/v1/openapi.json');
    expect(spec.status).toBe(200);
    // Connector enrolment carries no bearer: the one-time enrolment token in its body is the credential.
    const publicRoutes = new Set([
      'POST /api/v1/auth/login',
      'POST /api/v1/connectors/enroll',
      'GET /healthz',
      'GET /readyz',
    ]);
    const all = Object.entries(spec.body.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, operations]) =>
        Object.keys(operations).map((m) => ({
          method: m.toUpperCase() as Method,
          url: path.replace(/\{id\}/g, 'xyz_0000000000000000000a'),
          route: `${m.toUpperCase()} ${path}`,
        })),
    );
    for (const route of publicRoutes) expect(all.map((r) => r.route)).toContain(route);
    guardedRoutes = all.filter((r) => !publicRoutes.has(r.route));
    expect(guardedRoutes.length).toBeGreaterThan(30);
  });

  afterAll(async () => t.close());

  describe('sign-in and the session cookie', () => {
    it('returns a token and the public user, no secret, and sets an httpOnly SameSite=Strict cookie', async () => {
      t.clock.advance(STEP_MS);
      const res = await login('admin', ADMIN_PASSWORD, t.totp(t.admin));
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual([
        'expiresAt',
        'token',
        'totpEnrollmentRequired',
        'user',
      ]);
      expect(res.body.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(res.body.totpEnrollmentRequired).toBe(false);
      expect(res.body.user).toEqual({
        id: t.admin.id,
        username: 'admin',
        displayName: expect.any(String),
        organization: null,
        roles: ['admin'],
        totpEnabled: true,
        disabled: false,
        webhookConfigured: false,
        createdAt: expect.any(String),
      });

      // Nothing secret, under any name or as any value.
      const text = JSON.stringify(res.body);
      expect(keysOf(res.body).filter((k) => /hash|secret|password|salt/i.test(k))).toEqual([]);
      const { rows } = await t.db.pool.query<{ password_hash: string; totp_secret: Buffer }>(
        'select password_hash, totp_secret from users where id = $1',
        [t.admin.id],
      );
      expect(text).not.toContain(rows[0]!.password_hash);
      expect(text).not.toContain(ADMIN_PASSWORD);
      expect(text).not.toContain(base32Encode(t.admin.totpSecret!));
      expect(text).not.toContain(rows[0]!.totp_secret.toString('base64'));

      const cookies = setCookieOf(res);
      const session = cookies.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
      expect(session, cookies.join('\n')).toBeDefined();
      const [pair, ...attributes] = session!.split(/;\s*/);
      expect(pair).toBe(`${SESSION_COOKIE}=${res.body.token}`);
      expect(attributes).toContain('HttpOnly');
      expect(attributes).toContain('SameSite=Strict');
      expect(attributes).toContain('Path=/');
    });

    it('authenticates by cookie, and refuses a cookie-borne state change from a foreign origin', async () => {
      await createUser('cora', ['auditor']);
      const signedIn = await login('cora', USER_PASSWORD);
      expect(signedIn.status).toBe(200);
      const cookie = `${SESSION_COOKIE}=${signedIn.body.token}`;

      const me = await t.call('GET', '/api/v1/me', { headers: { cookie, host: HOST } });
      expect(me.status).toBe(200);
      expect(me.body.user.username).toBe('cora');

      const refused: Record<string, string>[] = [
        { origin: 'https://evil.example' },
        { origin: 'https://airlock.example:9443' },
        { referer: 'https://evil.example/page' },
        { origin: 'null' },
        {}, // neither Origin nor Referer
      ];
      for (const extra of refused) {
        const res = await t.call('POST', '/api/v1/auth/logout', {
          headers: { cookie, host: HOST, ...extra },
        });
        expectError(res, 403, 'auth.csrf_failed');
        // Refused means not done: the session still works.
        expect(
          (await t.call('GET', '/api/v1/me', { headers: { cookie, host: HOST } })).status,
        ).toBe(200);
      }

      // A bearer token is not sent by browsers on their own, so no origin check applies.
      const viaBearer = await t.call('POST', '/api/v1/auth/refresh', {
        token: signedIn.body.token,
        headers: { origin: 'https://evil.example' },
      });
      expect(viaBearer.status).toBe(200);

      const sameOrigin = await t.call('POST', '/api/v1/auth/refresh', {
        headers: { cookie, host: HOST, origin: SAME_ORIGIN },
      });
      expect(sameOrigin.status).toBe(200);
      const sameOriginReferer = await t.call('POST', '/api/v1/auth/logout', {
        headers: { cookie, host: HOST, referer: `${SAME_ORIGIN}/console/requests` },
      });
      expect(sameOriginReferer.status).toBe(204);
      expect(setCookieOf(sameOriginReferer).join('\n')).toMatch(
        new RegExp(`${SESSION_COOKIE}=;.*Expires=Thu, 01 Jan 1970`),
      );
      expectError(
        await t.call('GET', '/api/v1/me', { headers: { cookie, host: HOST } }),
        401,
        'auth.session_ended',
      );
    });
  });

  describe('failed sign-ins', () => {
    it('answers a wrong password, an unknown user, a wrong code and a disabled account identically, and audits each', async () => {
      const pia = await t.user('pia', ['approver']);
      const doraId = await createUser('dora', ['vendor'], 'Acme');
      expect(
        (
          await t.call('PATCH', `/api/v1/users/${doraId}`, {
            token: t.admin.token,
            body: { disabled: true },
          })
        ).status,
      ).toBe(200);
      t.clock.advance(STEP_MS);
      const mark = await headSeq();

      const attempts: [string, string, string | undefined, string][] = [
        ['pia', 'not-the-password-1', t.totp(pia), 'bad_password'],
        ['nobody-here', 'not-the-password-2', undefined, 'unknown_user'],
        ['pia', USER_PASSWORD, wrongCode(pia), 'bad_totp'],
        ['dora', USER_PASSWORD, undefined, 'disabled'],
      ];
      const responses: ApiResponse[] = [];
      for (const [username, password, code] of attempts)
        responses.push(await login(username, password, code));

      for (const res of responses) {
        expectError(res, 401, 'auth.invalid_credentials');
        expect(res.body).toEqual(responses[0]!.body);
        expect(res.headers['retry-after']).toBeUndefined();
        expect(setCookieOf(res)).toEqual([]);
      }

      const failed = await eventsSince(mark, 'user.login_failed');
      expect(failed.map((e) => [e.data.username, e.data.reason])).toEqual(
        attempts.map(([username, , , reason]) => [username, reason]),
      );
      for (const event of failed) {
        expect(event.outcome).toBe('failure');
        expect(event.actor_kind).toBe('anonymous');
      }
      // The trail records who tried, never what they typed.
      const trail = JSON.stringify(await eventsSince(mark));
      for (const [, password] of attempts) expect(trail).not.toContain(password);
      expect(await eventsSince(mark, 'user.login')).toEqual([]);
    });

    it('locks an account after the threshold, even for the right password, then lets it in after the lockout', async () => {
      await createUser('lena', ['vendor'], 'Acme');
      const mark = await headSeq();
      for (let i = 1; i <= LOCKOUT_THRESHOLD; i++)
        expectError(await login('lena', `wrong-${i}-password`), 401, 'auth.invalid_credentials');

      const locked = await login('lena', USER_PASSWORD);
      expectError(locked, 429, 'auth.locked');
      expect(locked.headers['retry-after']).toBe(String(LOCKOUT_MINUTES * 60));
      const until = new Date(t.clock.now().getTime() + LOCKOUT_MINUTES * 60_000).toISOString();
      expect(locked.body.error.message).toContain(until);
      expect(setCookieOf(locked)).toEqual([]);

      const lockEvents = await eventsSince(mark, 'user.locked');
      expect(lockEvents).toHaveLength(1);
      expect(lockEvents[0]!.data).toMatchObject({ username: 'lena', failures: LOCKOUT_THRESHOLD });
      expect((await eventsSince(mark, 'user.login_failed')).at(-1)!.data).toMatchObject({
        username: 'lena',
        reason: 'locked',
      });

      // An unknown username locks the same way and answers the same: no enumeration.
      for (let i = 1; i <= LOCKOUT_THRESHOLD; i++)
        expectError(await login('ghost-user', `guess-${i}`), 401, 'auth.invalid_credentials');
      const ghost = await login('ghost-user', 'guess-6');
      expectError(ghost, 429, 'auth.locked');
      expect(ghost.body).toEqual(locked.body);
      expect(ghost.headers['retry-after']).toBe(locked.headers['retry-after']);

      // One second before the end it still holds.
      t.clock.advance(LOCKOUT_MINUTES * 60_000 - 1000);
      const almost = await login('lena', USER_PASSWORD);
      expectError(almost, 429, 'auth.locked');
      expect(almost.headers['retry-after']).toBe('1');

      t.clock.advance(1000);
      expect((await login('lena', USER_PASSWORD)).status).toBe(200);

      // A success resets the count: four more failures and a success, then the
      // threshold counts from zero again (without the reset the first of these would lock).
      for (let round = 0; round < 2; round++) {
        for (let i = 1; i < LOCKOUT_THRESHOLD; i++)
          expectError(await login('lena', `again-${i}`), 401, 'auth.invalid_credentials');
        if (round === 0) expect((await login('lena', USER_PASSWORD)).status).toBe(200);
      }
      expectError(await login('lena', 'fifth-wrong'), 401, 'auth.invalid_credentials');
      expectError(await login('lena', USER_PASSWORD), 429, 'auth.locked');
    });

    it('lets no parallel guess past the threshold', async () => {
      await createUser('burst', ['vendor'], 'Acme');
      // Each guess costs a real password hash (the unknown user's a dummy one): 20 and 10 suffice.
      for (const [username, guesses] of [
        ['burst', 20],
        ['burst-unknown', 10],
      ] as const) {
        const mark = await headSeq();
        const results = await Promise.all(
          Array.from({ length: guesses }, (_, i) => login(username, `parallel-guess-${i}`)),
        );
        const codes = results.map((r) => r.body.error.code as string);
        expect(codes.filter((c) => c === 'auth.invalid_credentials')).toHaveLength(
          LOCKOUT_THRESHOLD,
        );
        expect(codes.filter((c) => c === 'auth.locked')).toHaveLength(guesses - LOCKOUT_THRESHOLD);
        for (const r of results.filter((x) => x.status === 429))
          expect(r.headers['retry-after']).toBe(String(LOCKOUT_MINUTES * 60));
        expect(await eventsSince(mark, 'user.locked')).toHaveLength(1);
        expect(await eventsSince(mark, 'user.login_failed')).toHaveLength(guesses);
        expect(await eventsSince(mark, 'user.login')).toEqual([]);
      }
      expectError(await login('burst', USER_PASSWORD), 429, 'auth.locked');
    });
  });

  describe('TOTP', () => {
    it('confines a user who must enrol to enrolment, then requires, checks and never replays a code', async () => {
      const nadiaId = await createUser('nadia', ['approver']);
      const first = await login('nadia', USER_PASSWORD);
      expect(first.status).toBe(200);
      expect(first.body.totpEnrollmentRequired).toBe(true);
      expect(first.body.user.totpEnabled).toBe(false);
      const enrolling: string = first.body.token;

      const allowed = new Set([
        'GET /api/v1/me',
        'POST /api/v1/me/totp',
        'POST /api/v1/me/totp/confirm',
        'POST /api/v1/auth/logout',
        'POST /api/v1/auth/refresh',
      ]);
      for (const route of allowed) expect(guardedRoutes.map((r) => r.route)).toContain(route);
      for (const { method, url, route } of guardedRoutes.filter((r) => !allowed.has(r.route))) {
        const res = await t.call(method, url, { token: enrolling, body: {} });
        expect(res.body?.error?.code, route).toBe('auth.totp_enrollment_required');
        expectError(res, 412, 'auth.totp_enrollment_required');
      }
      const me = await t.call('GET', '/api/v1/me', { token: enrolling });
      expect(me.status).toBe(200);
      expect(me.body.totpEnrollmentRequired).toBe(true);
      // A refreshed token keeps the narrow scope.
      const refreshed = await t.call('POST', '/api/v1/auth/refresh', { token: enrolling });
      expect(refreshed.status).toBe(200);
      expectError(
        await t.call('GET', '/api/v1/zones', { token: refreshed.body.token }),
        412,
        'auth.totp_enrollment_required',
      );

      const started = await t.call('POST', '/api/v1/me/totp', { token: enrolling });
      expect(started.status).toBe(200);
      expect(started.body.otpauthUri).toMatch(/^otpauth:\/\/totp\/Airlock:nadia\?/);
      const nadia: TestUser = {
        id: nadiaId,
        username: 'nadia',
        token: enrolling,
        totpSecret: base32Decode(started.body.secret as string),
      };
      expectError(
        await t.call('POST', '/api/v1/me/totp/confirm', {
          token: enrolling,
          body: { code: wrongCode(nadia) },
        }),
        400,
        'totp.invalid_code',
      );
      const confirmed = await t.call('POST', '/api/v1/me/totp/confirm', {
        token: enrolling,
        body: { code: t.totp(nadia) },
      });
      expect(confirmed.status).toBe(200);
      expect((await t.call('GET', '/api/v1/zones', { token: confirmed.body.token })).status).toBe(
        200,
      );

      // From now on the password alone is not enough, and says so.
      t.clock.advance(STEP_MS);
      const mark = await headSeq();
      expectError(await login('nadia', USER_PASSWORD), 401, 'auth.totp_required');
      const withCode = await login('nadia', USER_PASSWORD, t.totp(nadia));
      expect(withCode.status).toBe(200);
      expect(withCode.body.totpEnrollmentRequired).toBe(false);
      expect(withCode.body.user.totpEnabled).toBe(true);
      const [signedIn] = await eventsSince(mark, 'user.login');
      expect(signedIn!.data).toMatchObject({ mfa: true, scope: 'full' });

      // The same code again, within the same 30-second step: a replay.
      expectError(
        await login('nadia', USER_PASSWORD, t.totp(nadia)),
        401,
        'auth.invalid_credentials',
      );

      // A code from three steps ago is too old; one step ago is within tolerance.
      t.clock.advance(10 * 60_000);
      expectError(
        await login('nadia', USER_PASSWORD, t.totp(nadia, -3)),
        401,
        'auth.invalid_credentials',
      );
      expect((await login('nadia', USER_PASSWORD, t.totp(nadia, -1))).status).toBe(200);
      expect((await eventsSince(mark, 'user.login_failed')).map((e) => e.data.reason)).toEqual([
        'totp_missing',
        'bad_totp',
        'bad_totp',
      ]);

      // One code sent in parallel sign-ins (say, to two replicas) opens one session only.
      t.clock.advance(STEP_MS);
      const code = t.totp(nadia);
      const racing = await Promise.all(
        Array.from({ length: 4 }, () => login('nadia', USER_PASSWORD, code)),
      );
      expect(racing.map((r) => r.status).sort()).toEqual([200, 401, 401, 401]);

      // An admin resets a lost authenticator: sessions end, enrolment starts over.
      const reset = await t.call('POST', `/api/v1/users/${nadiaId}/totp/reset`, {
        token: t.admin.token,
      });
      expect(reset.status).toBe(204);
      expectError(
        await t.call('GET', '/api/v1/me', { token: withCode.body.token }),
        401,
        'auth.session_ended',
      );
      const again = await login('nadia', USER_PASSWORD);
      expect(again.status).toBe(200);
      expect(again.body.totpEnrollmentRequired).toBe(true);
      expect(again.body.user.totpEnabled).toBe(false);
      expectError(
        await t.call('GET', '/api/v1/zones', { token: again.body.token }),
        412,
        'auth.totp_enrollment_required',
      );
    });

    it('lets a vendor, whose role does not require TOTP, sign in with a password only', async () => {
      await createUser('vince', ['vendor'], 'Acme');
      const res = await login('vince', USER_PASSWORD);
      expect(res.status).toBe(200);
      expect(res.body.totpEnrollmentRequired).toBe(false);
      expect((await t.call('GET', '/api/v1/zones', { token: res.body.token })).status).toBe(200);
    });
  });

  describe('logout', () => {
    it('ends the token at once, on every route, and only that sign-in session', async () => {
      await createUser('luis', ['auditor']);
      const a = await login('luis', USER_PASSWORD);
      const b = await login('luis', USER_PASSWORD);
      expect((await t.call('GET', '/api/v1/users', { token: a.body.token })).status).toBe(200);

      const out = await t.call('POST', '/api/v1/auth/logout', { token: a.body.token });
      expect(out.status).toBe(204);
      const mark = await headSeq();
      for (const { method, url, route } of guardedRoutes) {
        const res = await t.call(method, url, { token: a.body.token, body: {} });
        expect(res.body?.error?.code, route).toBe('auth.session_ended');
        expectError(res, 401, 'auth.session_ended');
      }
      const rejected = await eventsSince(mark, 'auth.token_rejected');
      expect(rejected).toHaveLength(guardedRoutes.length);
      for (const e of rejected) expect(e.data.reason).toBe('auth.session_ended');

      // The other sign-in session of the same user is untouched.
      expect((await t.call('GET', '/api/v1/users', { token: b.body.token })).status).toBe(200);
    });
  });

  describe('refused tokens', () => {
    it('refuses forged, unsigned, misaddressed, garbage and orphaned tokens alike, auditing each', async () => {
      await createUser('tom', ['vendor'], 'Acme');
      const real: string = (await login('tom', USER_PASSWORD)).body.token;
      const claims = claimsOf(real);

      // The control: these very claims, signed with the broker's key by this
      // test, are accepted, so each refusal below is down to its one difference.
      const control = await signToken({ ...claims, jti: 'control-token' });
      expect((await t.call('GET', '/api/v1/me', { token: control })).status).toBe(200);

      const other = generateKeyPairSync('ed25519');
      const hs256 = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .sign(signingKeys.publicKey.export({ format: 'der', type: 'spki' }));
      const bad: Record<string, string> = {
        'signed by another Ed25519 key': await signToken(claims, other.privateKey),
        'alg none': `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(claims)}.`,
        'HS256 keyed with the public key': hs256,
        'wrong audience': await signToken({ ...claims, aud: 'airlock-connector' }),
        'wrong issuer': await signToken({ ...claims, iss: 'https://evil.example' }),
        'expired an hour ago': await signToken({
          ...claims,
          iat: Number(claims.iat) - 3600,
          nbf: Number(claims.nbf) - 3600,
          exp: Number(claims.iat) - 3000,
        }),
        'another token type': await signToken(claims, signingKeys.privateKey, {
          alg: 'EdDSA',
          typ: 'JWT',
        }),
        'unknown session': await signToken({ ...claims, sid: newId('authSession') }),
        'session of another user': await signToken({ ...claims, sub: t.admin.id }),
        tampered: `${real.split('.')[0]}.${b64url({ ...claims, scope: 'full', sub: t.admin.id })}.${real.split('.')[2]}`,
        garbage: 'garbage',
        'three dots of nothing': 'a.b.c',
        'too long': `${'a'.repeat(5000)}.b.c`,
      };
      expect(TOKEN_AUDIENCE).not.toBe('airlock-connector');
      expect(TOKEN_ISSUER).not.toBe('https://evil.example');

      const mark = await headSeq();
      for (const [label, token] of Object.entries(bad)) {
        for (const [method, url] of [
          ['GET', '/api/v1/me'],
          ['POST', '/api/v1/me/ssh-keys'],
        ] as const) {
          const res = await t.call(method, url, { token, body: { publicKey: 'x' } });
          expect(res.body?.error?.code, label).toBe('auth.token_invalid');
          expectError(res, 401, 'auth.token_invalid');
          expect(res.body.error.message).not.toContain(token.slice(0, 20));
        }
      }
      const rejected = await eventsSince(mark);
      expect(rejected.map((e) => e.type)).toEqual(
        Array(Object.keys(bad).length * 2).fill('auth.token_rejected'),
      );
      for (const e of rejected) {
        expect(e.outcome).toBe('failure');
        expect(e.data.reason).toBe('auth.token_invalid');
        expect(JSON.stringify(e.data)).not.toMatch(/eyJ/); // no token text in the trail
      }
      // No token at all is its own, unaudited, answer.
      expectError(await t.call('GET', '/api/v1/me'), 401, 'auth.token_missing');
      expect(await eventsSince(mark)).toHaveLength(rejected.length);
    });

    it('refuses every token of a disabled user, even with a session that was never revoked', async () => {
      const dinaId = await createUser('dina', ['vendor'], 'Acme');
      const token: string = (await login('dina', USER_PASSWORD)).body.token;
      expect((await t.call('GET', '/api/v1/me', { token })).status).toBe(200);

      const disabled = await t.call('PATCH', `/api/v1/users/${dinaId}`, {
        token: t.admin.token,
        body: { disabled: true },
      });
      expect(disabled.status).toBe(200);
      expect(disabled.body.disabled).toBe(true);
      const mark = await headSeq();
      expectError(await t.call('GET', '/api/v1/me', { token }), 401, 'auth.session_ended');

      // A live session row for the disabled user (as if revocation had failed):
      // the user check alone still refuses it.
      const sid = newId('authSession');
      const now = t.clock.now();
      await t.db.pool.query(
        `insert into auth_sessions (id, user_id, mfa, source_ip, user_agent, created_at, expires_at)
         values ($1, $2, false, '127.0.0.1', null, $3, $4)`,
        [sid, dinaId, now, new Date(now.getTime() + 3_600_000)],
      );
      const fresh = await signToken({ ...claimsOf(token), sid, jti: 'after-disable' });
      expectError(await t.call('GET', '/api/v1/me', { token: fresh }), 401, 'auth.token_invalid');
      expect((await eventsSince(mark, 'auth.token_rejected')).map((e) => e.data.reason)).toEqual([
        'auth.session_ended',
        'auth.token_invalid',
      ]);
      expectError(await login('dina', USER_PASSWORD), 401, 'auth.invalid_credentials');
    });

    it('refuses an expired token and refreshes a live one (short token lifetime)', async () => {
      const short = await createTestBroker({
        masterKey: MASTER_KEY,
        config: { accessTokenTtlSeconds: 60 },
      });
      try {
        const created = await short.call('POST', '/api/v1/users', {
          token: short.admin.token,
          body: {
            username: 'tess',
            password: USER_PASSWORD,
            roles: ['vendor'],
            organization: 'Acme',
          },
        });
        expect(created.status).toBe(201);
        const signedIn = await short.call('POST', '/api/v1/auth/login', {
          body: { username: 'tess', password: USER_PASSWORD },
        });
        const first: string = signedIn.body.token;
        expect(new Date(signedIn.body.expiresAt as string).getTime()).toBe(
          short.clock.now().getTime() + 60_000,
        );

        short.clock.advance(50_000);
        expect((await short.call('GET', '/api/v1/me', { token: first })).status).toBe(200);
        const refreshed = await short.call('POST', '/api/v1/auth/refresh', { token: first });
        expect(refreshed.status).toBe(200);
        const second: string = refreshed.body.token;
        expect(second).not.toBe(first);
        expect(new Date(refreshed.body.expiresAt as string).getTime()).toBe(
          short.clock.now().getTime() + 60_000,
        );
        expect(setCookieOf(refreshed).join('\n')).toContain(`${SESSION_COOKIE}=${second}`);

        // 66 s after issue: past the 60 s lifetime and the 5 s tolerance between replicas.
        short.clock.advance(16_000);
        const mark = (
          await short.db.pool.query<{ seq: number }>(
            'select coalesce(max(seq), 0)::bigint as seq from audit_events',
          )
        ).rows[0]!.seq;
        expectError(
          await short.call('GET', '/api/v1/me', { token: first }),
          401,
          'auth.token_invalid',
        );
        expect((await short.call('GET', '/api/v1/me', { token: second })).status).toBe(200);
        short.clock.advance(60_000);
        expectError(
          await short.call('GET', '/api/v1/me', { token: second }),
          401,
          'auth.token_invalid',
        );
        const { rows } = await short.db.pool.query<{ type: string; reason: string }>(
          `select type, data->>'reason' as reason from audit_events where seq > $1 order by seq`,
          [mark],
        );
        expect(rows).toEqual([
          { type: 'auth.token_rejected', reason: 'auth.token_invalid' },
          { type: 'auth.token_rejected', reason: 'auth.token_invalid' },
        ]);
      } finally {
        await short.close();
      }
    });
  });

  describe('password reset by an admin', () => {
    it('ends the user’s sessions, lifts a lockout, and only the new password works', async () => {
      const ritaId = await createUser('rita', ['vendor'], 'Acme');
      const before: string = (await login('rita', USER_PASSWORD)).body.token;
      for (let i = 0; i < LOCKOUT_THRESHOLD; i++) await login('rita', `wrong-${i}`);
      expectError(await login('rita', USER_PASSWORD), 429, 'auth.locked');

      const newPassword = 'a-completely-new-password-42';
      const mark = await headSeq();
      const reset = await t.call('POST', `/api/v1/users/${ritaId}/password`, {
        token: t.admin.token,
        body: { password: newPassword },
      });
      expect(reset.status).toBe(204);
      expect((await eventsSince(mark)).map((e) => e.type)).toEqual(['user.password_reset']);
      expect(JSON.stringify(await eventsSince(mark))).not.toContain(newPassword);

      expectError(await t.call('GET', '/api/v1/me', { token: before }), 401, 'auth.session_ended');
      expectError(await login('rita', USER_PASSWORD), 401, 'auth.invalid_credentials');
      const after = await login('rita', newPassword);
      expect(after.status).toBe(200);
      expect((await t.call('GET', '/api/v1/me', { token: after.body.token })).status).toBe(200);
    });

    it('refreshes a token into a new one that works for the same session', async () => {
      await createUser('fred', ['vendor'], 'Acme');
      const token: string = (await login('fred', USER_PASSWORD)).body.token;
      const refreshed = await t.call('POST', '/api/v1/auth/refresh', { token });
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.token).not.toBe(token);
      expect(claimsOf(refreshed.body.token as string).sid).toBe(claimsOf(token).sid);
      const me = await t.call('GET', '/api/v1/me', { token: refreshed.body.token });
      expect(me.status).toBe(200);
      expect(me.body.user.username).toBe('fred');
      // Logging out with the new token ends the old one too: one session.
      expect(
        (await t.call('POST', '/api/v1/auth/logout', { token: refreshed.body.token })).status,
      ).toBe(204);
      expectError(await t.call('GET', '/api/v1/me', { token }), 401, 'auth.session_ended');
    });
  });

  describe('SSH public keys', () => {
    let dir: string;
    const keygen = (
      name: string,
      type: string,
      bits?: number,
    ): { pub: string; fingerprint: string } => {
      const file = join(dir, name);
      execFileSync('ssh-keygen', [
        '-t',
        type,
        ...(bits === undefined ? [] : ['-b', String(bits)]),
        '-N',
        '',
        '-q',
        '-C',
        `${name}@laptop`,
        '-f',
        file,
      ]);
      const listed = execFileSync('ssh-keygen', ['-lf', `${file}.pub`])
        .toString()
        .split(' ');
      return { pub: readFileSync(`${file}.pub`, 'utf8').trim(), fingerprint: listed[1]! };
    };

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'airlock-ssh-keys-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('registers a real key with the fingerprint ssh-keygen shows; duplicates, bad keys and foreign deletes are refused', async () => {
      const sam = await t.user('sam', ['vendor'], { organization: 'Acme' });
      const ute = await t.user('ute', ['vendor'], { organization: 'Other GmbH' });
      const { pub, fingerprint } = keygen('sam', 'ed25519');
      expect(fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

      const mark = await headSeq();
      const added = await t.call('POST', '/api/v1/me/ssh-keys', {
        token: sam.token,
        body: { publicKey: pub, name: 'work laptop' },
      });
      expect(added.status).toBe(201);
      expect(added.body).toMatchObject({
        name: 'work laptop',
        algorithm: 'ssh-ed25519',
        fingerprint,
        publicKey: pub.split(' ').slice(0, 2).join(' '),
      });
      const keyId: string = added.body.id;
      expect(keyId).toMatch(/^key_/);
      const listed = await t.call('GET', '/api/v1/me/ssh-keys', { token: sam.token });
      expect(listed.body.keys.map((k: { fingerprint: string }) => k.fingerprint)).toEqual([
        fingerprint,
      ]);
      expect((await eventsSince(mark)).map((e) => [e.type, e.data.fingerprint])).toEqual([
        ['ssh_key.added', fingerprint],
      ]);

      // The same key, for another user or again, under any comment: one owner only.
      const [algorithm, blob] = pub.split(' ');
      for (const [user, publicKey] of [
        [ute, pub],
        [ute, `${algorithm} ${blob} a-different-comment`],
        [sam, pub],
      ] as const) {
        expectError(
          await t.call('POST', '/api/v1/me/ssh-keys', { token: user.token, body: { publicKey } }),
          409,
          'ssh_key.duplicate',
        );
      }

      // DSA (retired by OpenSSH), garbage, a pasted private key, two keys, a weak RSA key.
      const u32 = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(n);
        return b;
      };
      const sshString = (b: Buffer) => Buffer.concat([u32(b.length), b]);
      const dssBlob = Buffer.concat([
        sshString(Buffer.from('ssh-dss')),
        ...[128, 20, 128, 128].map((n) =>
          sshString(Buffer.concat([Buffer.from([0x00, 0x80 | 1]), randomBytes(n - 1)])),
        ),
      ]);
      const privateKey = readFileSync(join(dir, 'sam'), 'utf8');
      const weakRsa = keygen('weak', 'rsa', 1024);
      const refused: [string, ErrorCode][] = [
        [`ssh-dss ${dssBlob.toString('base64')} old@box`, 'ssh_key.unsupported_algorithm'],
        ['this is not a key', 'ssh_key.invalid'],
        [`ssh-ed25519 ${Buffer.from('garbage').toString('base64')}`, 'ssh_key.invalid'],
        [privateKey, 'ssh_key.invalid'],
        [`${keygen('two', 'ed25519').pub}\n${keygen('three', 'ed25519').pub}`, 'ssh_key.invalid'],
        [weakRsa.pub, 'ssh_key.invalid'],
      ];
      for (const [publicKey, code] of refused) {
        const res = await t.call('POST', '/api/v1/me/ssh-keys', {
          token: ute.token,
          body: { publicKey },
        });
        expectError(res, 400, code);
        const secretPart = privateKey.split('\n')[1]!;
        expect(res.body.error.message).not.toContain(secretPart);
      }
      expect((await t.call('GET', '/api/v1/me/ssh-keys', { token: ute.token })).body.keys).toEqual(
        [],
      );

      // Another user cannot delete it; it looks absent to them.
      expectError(
        await t.call('DELETE', `/api/v1/me/ssh-keys/${keyId}`, { token: ute.token }),
        404,
        'ssh_key.not_found',
      );
      expect(
        (await t.call('GET', '/api/v1/me/ssh-keys', { token: sam.token })).body.keys,
      ).toHaveLength(1);

      expect(
        (await t.call('DELETE', `/api/v1/me/ssh-keys/${keyId}`, { token: sam.token })).status,
      ).toBe(204);
      expect((await t.call('GET', '/api/v1/me/ssh-keys', { token: sam.token })).body.keys).toEqual(
        [],
      );
      expectError(
        await t.call('DELETE', `/api/v1/me/ssh-keys/${keyId}`, { token: sam.token }),
        404,
        'ssh_key.not_found',
      );
      // Once removed, the key is free for another user.
      const moved = await t.call('POST', '/api/v1/me/ssh-keys', {
        token: ute.token,
        body: { publicKey: pub },
      });
      expect(moved.status).toBe(201);
      expect(moved.body.fingerprint).toBe(fingerprint);
    });
  });
});
