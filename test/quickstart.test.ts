/**
 * The README's quick start, as a newcomer runs it: `pnpm start` on a machine
 * with no DATABASE_URL, no REDIS_URL and no admin password set, so the real
 * embedded PostgreSQL starts under a fresh data dir and the admin password is
 * generated and printed. Then what the README says one sees and does: health,
 * sign-in, TOTP enrolment, the OpenAPI document, metrics, a clean stop, the
 * operator CLI on the same data dir, and a restart that keeps everything.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base32Decode, totpCode } from '@airlock/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killBroker,
  printedJson,
  printedJsonLines,
  runCli,
  spawnBroker,
  type BrokerProcess,
} from './support/broker.js';
import { apiClient } from './support/http.js';

const LONG = 180_000;

describe('quick start: `pnpm start` on a fresh machine', () => {
  let dataDir = '';
  let broker: BrokerProcess | null = null;
  // What the first start leaves for the second.
  let adminPassword: string | null = null;
  let totpSecret: Buffer | null = null;
  let fullToken: string | null = null;
  let zoneId: string | null = null;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'airlock-quickstart-'));
  });

  afterAll(async () => {
    await killBroker(broker);
    await rm(dataDir, { recursive: true, force: true });
  }, 30_000);

  it(
    'starts with embedded PostgreSQL, prints the admin password once, serves the API, stops cleanly and leaves a verifiable audit trail',
    async () => {
      broker = await spawnBroker({ dataDir });
      const out = broker.stdout();
      expect(broker.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      adminPassword = broker.adminPassword;
      expect(adminPassword, `no admin password printed:\n${out}`).toMatch(/^\S{16,}$/);
      // Printed once, to the console only: never in a JSON log line.
      const logLines = out.split('\n').filter((line) => line.startsWith('{'));
      expect(logLines.length).toBeGreaterThan(0);
      expect(logLines.filter((line) => line.includes(adminPassword!))).toEqual([]);
      expect(out).toContain('DATABASE_URL is unset: starting the embedded PostgreSQL');
      const masterKey = await stat(join(dataDir, 'master.key'));
      expect(masterKey.mode & 0o777).toBe(0o600);

      const api = apiClient(broker.httpUrl);
      expect(await api.get('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
      const ready = await api.get('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body.checks).toMatchObject({ database: 'ok' });

      // Admins must enrol TOTP before anything else.
      const login = await api.post('/api/v1/auth/login', {
        username: 'admin',
        password: adminPassword,
      });
      expect(login.status).toBe(200);
      expect(login.body.token).toEqual(expect.any(String));
      expect(login.body).toMatchObject({
        totpEnrollmentRequired: true,
        user: { username: 'admin', roles: ['admin'] },
      });
      const enrolOnly = login.body.token as string;
      const refused = await api.get('/api/v1/users', enrolOnly);
      expect(refused.status).toBeGreaterThanOrEqual(400);
      expect(refused.body.error.code).toBe('auth.totp_enrollment_required');

      const wrongPassword = await api.post('/api/v1/auth/login', {
        username: 'admin',
        password: 'not-the-password',
      });
      expect(wrongPassword.status).toBe(401);
      expect(wrongPassword.body.error.code).toBe('auth.invalid_credentials');

      const enrolment = await api.post('/api/v1/me/totp', {}, enrolOnly);
      expect(enrolment.status).toBe(200);
      expect(enrolment.body.otpauthUri).toMatch(/^otpauth:\/\/totp\/Airlock:admin\?/);
      totpSecret = base32Decode(enrolment.body.secret as string);
      const confirmed = await api.post(
        '/api/v1/me/totp/confirm',
        { code: totpCode(totpSecret, Date.now()) },
        enrolOnly,
      );
      expect(confirmed.status).toBe(200);
      fullToken = confirmed.body.token as string;

      const users = await api.get('/api/v1/users', fullToken);
      expect(users.status).toBe(200);
      const zone = await api.post(
        '/api/v1/zones',
        { name: 'Plant A / Packaging line', policy: { requiredApprovals: 1 } },
        fullToken,
      );
      expect(zone.status).toBe(201);
      expect(zone.body.id).toMatch(/^zon_/);
      zoneId = zone.body.id as string;

      const openapi = await api.get('/api/v1/openapi.json');
      expect(openapi.status).toBe(200);
      expect(openapi.body.openapi).toMatch(/^3\.\d+\.\d+$/);
      expect(openapi.body.info).toMatchObject({
        title: expect.any(String),
        version: expect.any(String),
      });
      const paths = openapi.body.paths as Record<string, Record<string, { responses?: object }>>;
      expect(Object.keys(paths)).toEqual(
        expect.arrayContaining(['/api/v1/requests', '/api/v1/auth/login', '/api/v1/audit/verify']),
      );
      for (const [path, operations] of Object.entries(paths)) {
        expect(path).toMatch(/^\//);
        for (const operation of Object.values(operations))
          expect(operation.responses).toBeTypeOf('object');
      }
      expect(paths['/api/v1/requests']).toHaveProperty('post');

      const metrics = await api.get('/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain('airlock_http_request_duration_seconds');

      const exit = await broker.stop({ signal: 'SIGTERM', timeoutMs: 20_000 });
      expect(exit, `stderr:\n${broker.stderr()}`).toEqual({ code: 0, signal: null });
      broker = null;

      // The operator's CLI, on the same data dir, with the broker stopped.
      const verify = await runCli(['audit', 'verify'], { dataDir });
      expect(verify.code, verify.stderr).toBe(0);
      const verified = printedJson(verify.stdout) as { ok: boolean; events: number };
      expect(verified.ok).toBe(true);
      expect(verified.events).toBeGreaterThan(3);

      const exported = await runCli(['audit', 'export'], { dataDir });
      expect(exported.code, exported.stderr).toBe(0);
      const events = printedJsonLines(exported.stdout) as { type: string; seq: number }[];
      const types = events.map((e) => e.type);
      expect(types).toEqual(
        expect.arrayContaining([
          'system.started',
          'user.login',
          'user.login_failed',
          'user.totp_enrolled',
          'zone.created',
          'system.stopped',
        ]),
      );
      expect(types.indexOf('system.started')).toBeLessThan(types.indexOf('user.login'));
      expect(types.lastIndexOf('system.stopped')).toBeGreaterThan(
        types.lastIndexOf('zone.created'),
      );
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(exported.stdout).not.toContain(adminPassword);
    },
    LONG,
  );

  it(
    'restarts on the same data dir: no new password, same master key, same users and data',
    async () => {
      expect(adminPassword, 'the first start did not complete').not.toBeNull();
      const keyBefore = await readFile(join(dataDir, 'master.key'), 'utf8');

      broker = await spawnBroker({ dataDir });
      expect(broker.adminPassword).toBeNull();
      expect(broker.stdout()).not.toContain('created user');
      expect(await readFile(join(dataDir, 'master.key'), 'utf8')).toBe(keyBefore);

      const api = apiClient(broker.httpUrl);
      // A token signed before the restart still verifies: the keys derive from the same master key.
      const me = await api.get('/api/v1/me', fullToken!);
      expect(me.status).toBe(200);
      expect(me.body.user).toMatchObject({ username: 'admin', totpEnabled: true });

      const withoutCode = await api.post('/api/v1/auth/login', {
        username: 'admin',
        password: adminPassword,
      });
      expect(withoutCode.status).toBe(401);
      expect(withoutCode.body.error.code).toBe('auth.totp_required');
      // The next step's code: the current one may already have been used to enrol (RFC 6238 §5.2).
      const login = await api.post('/api/v1/auth/login', {
        username: 'admin',
        password: adminPassword,
        totp: totpCode(totpSecret!, Date.now() + 30_000),
      });
      expect(login.status).toBe(200);
      expect(login.body.totpEnrollmentRequired).toBe(false);
      const zones = await api.get('/api/v1/zones', login.body.token as string);
      expect(zones.body.zones.map((z: { id: string }) => z.id)).toEqual([zoneId]);

      const exit = await broker.stop();
      expect(exit, `stderr:\n${broker.stderr()}`).toEqual({ code: 0, signal: null });
      broker = null;

      const verify = await runCli(['audit', 'verify'], { dataDir });
      expect(verify.code, verify.stderr).toBe(0);
      expect(printedJson(verify.stdout)).toMatchObject({ ok: true });
      const exported = await runCli(['audit', 'export'], { dataDir });
      const types = (printedJsonLines(exported.stdout) as { type: string }[]).map((e) => e.type);
      expect(types.filter((t) => t === 'system.started')).toHaveLength(2);
      expect(types.filter((t) => t === 'system.stopped')).toHaveLength(2);
    },
    LONG,
  );
});
