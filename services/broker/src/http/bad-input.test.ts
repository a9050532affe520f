/**
 * DESIGN invariant 7: bad input gets a clear error with a stable code, is
 * audited where it is security-relevant, and loses nothing. Every refused
 * write below runs between two fingerprints of every table (row count and a
 * digest of the rows): they must be equal, and the audit trail may only have
 * grown by refusal events. Invariant 6 too: an asset credential never leaves
 * the broker, not in a response and not in the audit trail.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveEd25519KeyPair, parseMasterKey } from '@airlock/crypto';
import { ERROR_CATALOGUE, HTTP_STATUS_BY_KIND, newId, type ErrorCode } from '@airlock/domain';
import {
  ADMIN_PASSWORD,
  USER_PASSWORD,
  createTestBroker,
  type ApiResponse,
  type TestBroker,
  type TestUser,
} from '../testing/harness.js';

/** Pinned so that tests can sign tokens with the broker's own key (see auth.test.ts). */
const MASTER_KEY = Buffer.alloc(32, 0x3c).toString('base64');

const signingKeys = deriveEd25519KeyPair(parseMasterKey(MASTER_KEY), 'access-tokens');

const BODY_LIMIT = 4096;
const CREDENTIAL = 'plc-Pa55word-that-never-leaves';
const CREDENTIAL_2 = 'rotated-Pa55word-that-never-leaves';
const PRIVATE_KEY_PEM = generateKeyPairSync('ed25519')
  .privateKey.export({ format: 'pem', type: 'pkcs8' })
  .toString();
const PRIVATE_KEY_BODY = PRIVATE_KEY_PEM.split('\n')[1]!;
/** Text that must never appear in an error message, a response or the audit trail. */
const NEVER_SHOWN = [ADMIN_PASSWORD, USER_PASSWORD, CREDENTIAL, CREDENTIAL_2, PRIVATE_KEY_BODY];

/** Every table a write could touch; the audit trail is checked on its own. */
const TABLES = [
  'users',
  'organizations',
  'zones',
  'zone_approvers',
  'assets',
  'connectors',
  'access_requests',
  'access_request_assets',
  'access_request_zones',
  'approvals',
  'grants',
  'jobs',
  'ssh_keys',
  'auth_sessions',
] as const;

/** The only events a refused request may leave behind. */
const REFUSAL_EVENTS = new Set([
  'auth.permission_denied',
  'auth.token_rejected',
  'user.login_failed',
  'user.locked',
  'access_request.decision_refused',
  'grant.revoke_refused',
]);

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Attempt {
  readonly method: Method;
  readonly url: string;
  readonly as: TestUser | null;
  readonly body?: unknown;
  /** Sent as is, with this content type. */
  readonly raw?: { readonly payload: string; readonly contentType: string };
}

interface AuditRow {
  type: string;
  outcome: string;
  actor_id: string | null;
  data: Record<string, unknown>;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The message must be the catalogue's template with its placeholders filled. */
function templatePattern(code: ErrorCode): RegExp {
  const parts = ERROR_CATALOGUE[code].message.split(/\{\w+\}/);
  return new RegExp(`^${parts.map(escapeRegExp).join('[\\s\\S]+')}$`);
}

/** Strings under credential-like keys of a request body: an error must not echo them. */
function submittedSecrets(body: unknown): string[] {
  if (body === null || typeof body !== 'object') return [];
  return Object.entries(body).flatMap(([key, value]) =>
    typeof value === 'string' && /password|credential|totp|code|secret/i.test(key)
      ? value.length >= 6
        ? [value]
        : []
      : submittedSecrets(value),
  );
}

/** The error contract: `{error: {code, message}}` and nothing else; a catalogued code; no leaks. */
function expectError(
  res: ApiResponse,
  status: number,
  code: ErrorCode,
  detail?: string | RegExp,
  submitted: readonly string[] = [],
): string {
  const shown = JSON.stringify(res.body);
  expect(res.body?.error?.code, `expected ${code}, got ${res.status} ${shown}`).toBe(code);
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(Object.keys(res.body.error).sort()).toEqual(['code', 'message']);
  expect(Object.keys(ERROR_CATALOGUE)).toContain(code);
  expect(HTTP_STATUS_BY_KIND[ERROR_CATALOGUE[code].kind]).toBe(status);
  const message = res.body.error.message as string;
  expect(message).toMatch(templatePattern(code));
  expect(message).not.toMatch(/\n\s+at |\.[jt]s:\d+|node_modules|Error:/); // stack traces
  expect(message).not.toMatch(
    /\b(select|insert into|update \w+ set|delete from)\b|violates|constraint|relation "|duplicate key|syntax error at/i,
  );
  for (const secret of [...NEVER_SHOWN, ...submitted]) expect(shown).not.toContain(secret);
  if (detail !== undefined) expect(message).toMatch(detail);
  return message;
}

describe('bad input', () => {
  let t: TestBroker;
  let vendor: TestUser;
  let otherVendor: TestUser;
  let approver: TestUser;
  let auditor: TestUser;
  let zoneId: string;
  let assetId: string;
  let pendingId: string;
  let grantId: string;
  const zoneName = 'Plant A / Packaging';

  const send = (a: Attempt): Promise<ApiResponse> =>
    t.call(a.method, a.url, {
      ...(a.as === null ? {} : { token: a.as.token }),
      ...(a.raw === undefined
        ? a.body === undefined
          ? {}
          : { body: a.body }
        : { body: a.raw.payload, headers: { 'content-type': a.raw.contentType } }),
    });

  async function fingerprint(): Promise<{ tables: Record<string, string>; seq: number }> {
    const { rows } = await t.db.pool.query<{ name: string; n: number; digest: string }>(
      TABLES.map(
        (table) =>
          `select '${table}' as name, count(*)::int as n,
                  md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as digest
             from ${table} x`,
      ).join(' union all '),
    );
    const head = await t.db.pool.query<{ seq: number }>(
      'select coalesce(max(seq), 0)::bigint as seq from audit_events',
    );
    return {
      tables: Object.fromEntries(rows.map((r) => [r.name, `${r.n} rows, ${r.digest}`])),
      seq: head.rows[0]?.seq ?? 0,
    };
  }

  async function eventsSince(seq: number): Promise<AuditRow[]> {
    const { rows } = await t.db.pool.query<AuditRow>(
      'select type, outcome, actor_id, data from audit_events where seq > $1 order by seq',
      [seq],
    );
    return rows;
  }

  /**
   * Lets lifecycle jobs made due by earlier writes (a grant activating now)
   * finish, so that the poll loop changes nothing while a refusal is measured.
   */
  async function settle(): Promise<void> {
    for (;;) {
      await t.jobs.runDue();
      const { rows } = await t.db.pool.query<{ n: number }>(
        `select count(*)::int as n from jobs
          where state = 'dispatched' or (state = 'scheduled' and run_at <= $1)`,
        [t.clock.now()],
      );
      if (rows[0]?.n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Runs a request that must fail, and proves it wrote nothing but refusal events. */
  async function refusedWithoutTrace(
    attempt: Attempt,
  ): Promise<{ res: ApiResponse; events: AuditRow[] }> {
    await settle();
    const before = await fingerprint();
    const res = await send(attempt);
    const after = await fingerprint();
    const label = `${attempt.method} ${attempt.url} → ${res.status} ${JSON.stringify(res.body)}`;
    expect(after.tables, label).toEqual(before.tables);
    const events = await eventsSince(before.seq);
    for (const e of events) {
      expect(REFUSAL_EVENTS.has(e.type), `${label}: unexpected event ${e.type}`).toBe(true);
      expect(e.outcome, label).toBe('failure');
    }
    return { res, events };
  }

  async function expectRefused(
    attempt: Attempt,
    status: number,
    code: ErrorCode,
    detail?: string | RegExp,
  ): Promise<{ res: ApiResponse; events: AuditRow[]; message: string }> {
    const result = await refusedWithoutTrace(attempt);
    const message = expectError(
      result.res,
      status,
      code,
      detail,
      submittedSecrets(attempt.body ?? attempt.raw?.payload),
    );
    return { ...result, message };
  }

  const fileRequest = async (body: Record<string, unknown>): Promise<string> => {
    const res = await t.call('POST', '/api/v1/requests', { token: vendor.token, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const inMinutes = (minutes: number): string =>
    new Date(t.clock.now().getTime() + minutes * 60_000).toISOString();

  beforeAll(async () => {
    t = await createTestBroker({ masterKey: MASTER_KEY, config: { bodyLimitBytes: BODY_LIMIT } });
    vendor = await t.user('vera', ['vendor'], { organization: 'Nordwerk Automation' });
    otherVendor = await t.user('otto', ['vendor'], { organization: 'Other GmbH' });
    approver = await t.user('alice', ['approver']);
    auditor = await t.user('audrey', ['auditor']);
    const zone = await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      body: {
        name: zoneName,
        policy: { requiredApprovals: 1, maxWindowMinutes: 240, allowedCapabilities: ['shell'] },
      },
    });
    expect(zone.status).toBe(201);
    zoneId = zone.body.id;
    const approvers = await t.call('PUT', `/api/v1/zones/${zoneId}/approvers`, {
      token: t.admin.token,
      body: { userIds: [approver.id] },
    });
    expect(approvers.status).toBe(200);
    const asset = await t.call('POST', '/api/v1/assets', {
      token: t.admin.token,
      body: {
        name: 'plc-01',
        zoneId,
        host: '10.0.0.5',
        port: 502,
        protocol: 'modbus',
        login: 'operator',
        credential: CREDENTIAL,
      },
    });
    expect(asset.status).toBe(201);
    assetId = asset.body.id;
    pendingId = await fileRequest({ assetIds: [assetId], durationMinutes: 60, reason: 'Valve' });
    const granted = await fileRequest({ assetIds: [assetId], durationMinutes: 30, reason: 'Pump' });
    const approved = await t.call('POST', `/api/v1/requests/${granted}/approve`, {
      token: approver.token,
      body: {},
    });
    expect(approved.status).toBe(200);
    grantId = approved.body.grantIds[0];
  });

  afterAll(async () => t.close());

  /** Every write route, each with a caller the route admits. */
  const writeRoutes = (): { method: Method; url: string; as: TestUser | null }[] => [
    { method: 'POST', url: '/api/v1/auth/login', as: null },
    { method: 'POST', url: '/api/v1/users', as: t.admin },
    { method: 'PATCH', url: `/api/v1/users/${otherVendor.id}`, as: t.admin },
    { method: 'POST', url: `/api/v1/users/${otherVendor.id}/password`, as: t.admin },
    { method: 'POST', url: '/api/v1/zones', as: t.admin },
    { method: 'PATCH', url: `/api/v1/zones/${zoneId}`, as: t.admin },
    { method: 'PUT', url: `/api/v1/zones/${zoneId}/approvers`, as: t.admin },
    { method: 'POST', url: '/api/v1/assets', as: t.admin },
    { method: 'PATCH', url: `/api/v1/assets/${assetId}`, as: t.admin },
    { method: 'POST', url: '/api/v1/connectors', as: t.admin },
    { method: 'POST', url: '/api/v1/requests', as: vendor },
    { method: 'POST', url: `/api/v1/requests/${pendingId}/approve`, as: approver },
    { method: 'POST', url: `/api/v1/requests/${pendingId}/deny`, as: approver },
    { method: 'POST', url: `/api/v1/grants/${grantId}/revoke`, as: t.admin },
    { method: 'POST', url: '/api/v1/me/ssh-keys', as: vendor },
    { method: 'PUT', url: '/api/v1/me/webhook', as: vendor },
  ];

  describe('request bodies', () => {
    it('refuses malformed JSON, a wrong content type and an oversized body on every write', async () => {
      const json = 'application/json';
      const tooLarge = JSON.stringify({ name: 'x'.repeat(BODY_LIMIT), password: CREDENTIAL });
      // prettier-ignore
      const bodies: [{ payload: string; contentType: string }, ErrorCode][] = [
        [{ payload: '{"name": ', contentType: json }, 'request.malformed_json'],
        [{ payload: '{"name": "x",}', contentType: json }, 'request.malformed_json'],
        [{ payload: '', contentType: json }, 'request.malformed_json'],
        [{ payload: '{"name":"x","__proto__":{"roles":["admin"]}}', contentType: json }, 'request.malformed_json'],
        [{ payload: 'hello', contentType: 'text/plain' }, 'request.unsupported_media_type'],
        [{ payload: 'name=x', contentType: 'application/x-www-form-urlencoded' }, 'request.unsupported_media_type'],
        [{ payload: '<zone name="x"/>', contentType: 'application/xml' }, 'request.unsupported_media_type'],
        [{ payload: tooLarge, contentType: json }, 'request.body_too_large'],
      ];
      for (const route of writeRoutes()) {
        for (const [raw, code] of bodies) {
          const { message } = await expectRefused({ ...route, raw }, 400, code);
          if (code === 'request.body_too_large') expect(message).toContain(String(BODY_LIMIT));
        }
      }
    });

    it('refuses an unknown field in every body, naming it, and accepts the same body without it', async () => {
      const throwaway = await t.call('POST', '/api/v1/users', {
        token: t.admin.token,
        body: { username: 'throwaway', password: USER_PASSWORD, roles: ['auditor'] },
      });
      const userId = throwaway.body.id as string;
      const toDeny = await fileRequest({ assetIds: [assetId], durationMinutes: 30, reason: 'No' });
      const toApprove = await fileRequest({
        assetIds: [assetId],
        durationMinutes: 30,
        reason: 'Yes',
      });
      const approved = await fileRequest({
        assetIds: [assetId],
        durationMinutes: 30,
        reason: 'Done',
      });
      const toRevoke = (
        await t.call('POST', `/api/v1/requests/${approved}/approve`, {
          token: approver.token,
          body: {},
        })
      ).body.grantIds[0] as string;
      // prettier-ignore
      const cases: [Attempt, number][] = [
        [{ method: 'POST', url: '/api/v1/auth/login', as: null, body: { username: 'vera', password: USER_PASSWORD } }, 200],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { username: 'newbie', password: USER_PASSWORD, roles: ['vendor'], organization: 'New Co' } }, 201],
        [{ method: 'PATCH', url: `/api/v1/users/${userId}`, as: t.admin, body: { displayName: 'Thrown Away' } }, 200],
        [{ method: 'POST', url: `/api/v1/users/${userId}/password`, as: t.admin, body: { password: 'another-long-password' } }, 204],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Water works', policy: { requiredApprovals: 2 } } }, 201],
        [{ method: 'PATCH', url: `/api/v1/zones/${zoneId}`, as: t.admin, body: { description: 'Line 3' } }, 200],
        [{ method: 'PUT', url: `/api/v1/zones/${zoneId}/approvers`, as: t.admin, body: { userIds: [approver.id] } }, 200],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { name: 'hmi-01', zoneId, host: 'hmi-01.plant.local', port: 8080, protocol: 'http' } }, 201],
        [{ method: 'PATCH', url: `/api/v1/assets/${assetId}`, as: t.admin, body: { description: 'Filler PLC' } }, 200],
        [{ method: 'POST', url: '/api/v1/connectors', as: t.admin, body: { name: 'edge-01', zoneId } }, 201],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { assetIds: [assetId], durationMinutes: 45, reason: 'Check sensor' } }, 201],
        [{ method: 'POST', url: `/api/v1/requests/${toApprove}/approve`, as: approver, body: { comment: 'ok' } }, 200],
        [{ method: 'POST', url: `/api/v1/requests/${toDeny}/deny`, as: approver, body: { reason: 'not today' } }, 200],
        [{ method: 'POST', url: `/api/v1/grants/${toRevoke}/revoke`, as: t.admin, body: { reason: 'done' } }, 200],
        [{ method: 'PUT', url: '/api/v1/me/webhook', as: vendor, body: { url: null } }, 200],
      ];
      for (const [attempt] of cases) {
        await expectRefused(
          { ...attempt, body: { ...(attempt.body as object), surprise: true } },
          400,
          'request.invalid',
          'body has unknown field "surprise"',
        );
      }
      // Nested objects and querystrings are just as strict.
      // prettier-ignore
      const nested: [Attempt, string][] = [
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Nested', policy: { maxWindowMinutes: 60, foo: 1 } } }, 'body/policy has unknown field "foo"'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Nested', policy: { commandRules: [{ pattern: 'rm', action: 'block', severity: 9 }] } } }, 'body/policy/commandRules/0 has unknown field "severity"'],
        [{ method: 'GET', url: '/api/v1/requests?status=pending&sort=desc', as: vendor }, 'querystring has unknown field "sort"'],
      ];
      for (const [attempt, detail] of nested)
        await expectRefused(attempt, 400, 'request.invalid', detail);

      // The very same bodies without the extra field are fine: it was the only fault.
      for (const [attempt, ok] of cases) {
        const res = await send(attempt);
        expect(res.status, `${attempt.method} ${attempt.url}: ${JSON.stringify(res.body)}`).toBe(
          ok,
        );
      }
    });

    it('refuses wrong types and out-of-range values, naming the field', async () => {
      const asset = { name: 'rtu-01', zoneId, host: '10.0.0.9', port: 502, protocol: 'modbus' };
      const request = { assetIds: [assetId], durationMinutes: 60, reason: 'Check' };
      const user = { username: 'x1', password: USER_PASSWORD };
      const json = 'application/json';
      // prettier-ignore
      const cases: [Attempt, string][] = [
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, port: '22' } }, 'body/port must be integer'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, port: 70000 } }, 'body/port must be <= 65535'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, protocol: 'telnet' } }, 'body/protocol'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, forwardPorts: [502, 0] } }, 'body/forwardPorts/1'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, name: 'Not A DNS Label' } }, 'body/name'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, credential: 12345678 } }, 'body/credential must be string'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { ...user, roles: 'admin' } }, 'body/roles must be array'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { ...user, roles: ['root'] } }, 'body/roles/0'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { ...user, roles: [] } }, 'body/roles'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { ...user, username: 'Robert"); drop table users;--', roles: ['auditor'] } }, 'body/username'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 42 } }, 'body/name must be string'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Typed', policy: { requiredApprovals: '2' } } }, 'body/policy/requiredApprovals must be integer'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Typed', policy: { requiredApprovals: 0 } } }, 'body/policy/requiredApprovals must be >= 1'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, raw: { payload: '[{"name":"x"}]', contentType: json } }, 'body must be object'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, raw: { payload: 'null', contentType: json } }, 'body must be object'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, assetIds: assetId } }, 'body/assetIds must be array'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, assetIds: [] } }, 'body/assetIds'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, assetIds: [assetId, assetId] } }, 'body/assetIds'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, durationMinutes: 60.5 } }, 'body/durationMinutes must be integer'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, durationMinutes: '60' } }, 'body/durationMinutes must be integer'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, capabilities: ['teleport'] } }, 'body/capabilities/0'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { ...request, reason: '' } }, 'body/reason'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { assetIds: [assetId], endsAt: 'tomorrow', reason: 'x' } }, 'body/endsAt must match format "date-time"'],
        [{ method: 'PATCH', url: `/api/v1/users/${otherVendor.id}`, as: t.admin, body: { disabled: 'true' } }, 'body/disabled must be boolean'],
        [{ method: 'POST', url: '/api/v1/auth/login', as: null, body: { username: 'vera', password: 12345678 } }, 'body/password must be string'],
        [{ method: 'POST', url: '/api/v1/auth/login', as: null, body: { username: 'vera', password: USER_PASSWORD, totp: 'abcdef' } }, 'body/totp'],
        [{ method: 'POST', url: '/api/v1/auth/login', as: null, body: { username: 'vera' } }, "must have required property 'password'"],
        [{ method: 'GET', url: '/api/v1/requests?limit=abc', as: vendor }, 'querystring/limit must be integer'],
        [{ method: 'GET', url: '/api/v1/requests?limit=0', as: vendor }, 'querystring/limit must be >= 1'],
        [{ method: 'GET', url: '/api/v1/requests?status=bogus', as: vendor }, 'querystring/status'],
        [{ method: 'GET', url: '/api/v1/audit?from=yesterday', as: auditor }, 'querystring/from must match format "date-time"'],
      ];
      for (const [attempt, detail] of cases)
        await expectRefused(attempt, 400, 'request.invalid', detail);
    });

    it('refuses NUL characters and unstorable instants as invalid requests, not internal errors', async () => {
      const leap = '2026-03-02T23:59:60Z';
      // prettier-ignore
      const cases: [Attempt, string][] = [
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Plant\u0000B' } }, 'body/name must not contain the NUL character'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: 'Rules', policy: { commandRules: [{ pattern: 'rm\u0000', action: 'block' }] } } }, 'body/policy/commandRules/0/pattern must not contain'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { username: 'nul', password: USER_PASSWORD, roles: ['vendor'], organization: 'Acme\u0000' } }, 'body/organization must not contain'],
        [{ method: 'PATCH', url: `/api/v1/users/${otherVendor.id}`, as: t.admin, body: { displayName: 'O\u0000tto' } }, 'body/displayName must not contain'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { name: 'rtu-02', zoneId, host: '10.0.0.9', port: 502, protocol: 'modbus', description: 'x\u0000' } }, 'body/description must not contain'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { assetIds: [assetId], durationMinutes: 60, reason: 'Fix\u0000' } }, 'body/reason must not contain'],
        [{ method: 'POST', url: '/api/v1/auth/login', as: null, body: { username: 'vera\u0000', password: USER_PASSWORD } }, 'body/username must not contain'],
        [{ method: 'GET', url: '/api/v1/audit?type=user%00.login', as: auditor }, 'querystring/type must not contain'],
        // RFC 3339 admits a leap second and year 0000; neither is a storable instant.
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { assetIds: [assetId], endsAt: leap, reason: 'Leap' } }, 'body/endsAt must match format "date-time"'],
        [{ method: 'POST', url: `/api/v1/requests/${pendingId}/approve`, as: approver, body: { notAfter: leap } }, 'body/notAfter must match format "date-time"'],
        [{ method: 'GET', url: '/api/v1/audit?from=0000-01-01T00:00:00Z', as: auditor }, 'querystring/from must match format "date-time"'],
        [{ method: 'GET', url: `/api/v1/audit?to=${encodeURIComponent('0001-01-01T00:30:00+01:00')}`, as: auditor }, 'querystring/to must match format "date-time"'],
      ];
      for (const [attempt, detail] of cases)
        await expectRefused(attempt, 400, 'request.invalid', detail);
      // The storable extremes still pass.
      const far = await t.call(
        'GET',
        '/api/v1/audit?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z',
        {
          token: auditor.token,
        },
      );
      expect(far.status).toBe(200);
    });
  });

  describe('identifiers', () => {
    it('refuses ids of the wrong kind or shape', async () => {
      const zon = newId('zone');
      const ast = newId('asset');
      const asset = { name: 'rtu-03', host: '10.0.0.9', port: 502, protocol: 'modbus' };
      // prettier-ignore
      const cases: [Attempt, string][] = [
        [{ method: 'GET', url: `/api/v1/assets/${zon}`, as: t.admin }, 'params/id must match pattern "^ast_'],
        [{ method: 'GET', url: `/api/v1/zones/${ast}`, as: t.admin }, 'params/id must match pattern "^zon_'],
        [{ method: 'GET', url: `/api/v1/users/${zon}`, as: t.admin }, 'params/id must match pattern "^usr_'],
        [{ method: 'GET', url: `/api/v1/requests/${newId('grant')}`, as: t.admin }, 'params/id must match pattern "^req_'],
        [{ method: 'GET', url: `/api/v1/grants/${newId('accessRequest')}`, as: t.admin }, 'params/id must match pattern "^grt_'],
        [{ method: 'GET', url: '/api/v1/assets/ast_123', as: t.admin }, 'params/id'],
        [{ method: 'GET', url: `/api/v1/assets/${ast.toUpperCase()}`, as: t.admin }, 'params/id'],
        [{ method: 'GET', url: `/api/v1/assets/${encodeURIComponent("ast_' or '1'='1")}`, as: t.admin }, 'params/id'],
        [{ method: 'PATCH', url: `/api/v1/assets/${zon}`, as: t.admin, body: { port: 22 } }, 'params/id'],
        [{ method: 'POST', url: `/api/v1/requests/${zon}/approve`, as: approver, body: {} }, 'params/id'],
        [{ method: 'POST', url: `/api/v1/grants/${ast}/revoke`, as: t.admin, body: { reason: 'x' } }, 'params/id'],
        [{ method: 'DELETE', url: `/api/v1/me/ssh-keys/${newId('user')}`, as: vendor }, 'params/id'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, zoneId: ast } }, 'body/zoneId'],
        [{ method: 'POST', url: '/api/v1/connectors', as: t.admin, body: { name: 'edge-09', zoneId: newId('user') } }, 'body/zoneId'],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { assetIds: [zon], durationMinutes: 60, reason: 'x' } }, 'body/assetIds/0'],
        [{ method: 'PUT', url: `/api/v1/zones/${zoneId}/approvers`, as: t.admin, body: { userIds: [ast] } }, 'body/userIds/0'],
        [{ method: 'GET', url: `/api/v1/assets?zoneId=${newId('user')}`, as: vendor }, 'querystring/zoneId'],
        [{ method: 'GET', url: `/api/v1/grants?assetId=${zon}`, as: vendor }, 'querystring/assetId'],
      ];
      for (const [attempt, detail] of cases)
        await expectRefused(attempt, 400, 'request.invalid', detail);
    });

    it('answers well-formed but unknown ids with the not-found code of their kind', async () => {
      const u = {
        asset: newId('asset'),
        zone: newId('zone'),
        request: newId('accessRequest'),
        grant: newId('grant'),
        user: newId('user'),
        key: newId('sshKey'),
      };
      const asset = {
        name: 'rtu-04',
        host: '10.0.0.9',
        port: 502,
        protocol: 'modbus',
        credential: CREDENTIAL,
      };
      // prettier-ignore
      const cases: [Attempt, ErrorCode, string][] = [
        [{ method: 'GET', url: `/api/v1/assets/${u.asset}`, as: vendor }, 'asset.not_found', u.asset],
        [{ method: 'PATCH', url: `/api/v1/assets/${u.asset}`, as: t.admin, body: { port: 22, credential: CREDENTIAL_2 } }, 'asset.not_found', u.asset],
        [{ method: 'POST', url: '/api/v1/requests', as: vendor, body: { assetIds: [assetId, u.asset], durationMinutes: 60, reason: 'x' } }, 'asset.not_found', u.asset],
        [{ method: 'GET', url: `/api/v1/zones/${u.zone}`, as: vendor }, 'zone.not_found', u.zone],
        [{ method: 'PATCH', url: `/api/v1/zones/${u.zone}`, as: t.admin, body: { name: 'Renamed' } }, 'zone.not_found', u.zone],
        [{ method: 'PUT', url: `/api/v1/zones/${u.zone}/approvers`, as: t.admin, body: { userIds: [approver.id] } }, 'zone.not_found', u.zone],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...asset, zoneId: u.zone } }, 'zone.not_found', u.zone],
        [{ method: 'POST', url: '/api/v1/connectors', as: t.admin, body: { name: 'edge-02', zoneId: u.zone } }, 'zone.not_found', u.zone],
        [{ method: 'GET', url: `/api/v1/requests/${u.request}`, as: t.admin }, 'access_request.not_found', u.request],
        [{ method: 'POST', url: `/api/v1/requests/${u.request}/approve`, as: approver, body: {} }, 'access_request.not_found', u.request],
        [{ method: 'POST', url: `/api/v1/requests/${u.request}/deny`, as: approver, body: { reason: 'no' } }, 'access_request.not_found', u.request],
        [{ method: 'POST', url: `/api/v1/requests/${u.request}/cancel`, as: vendor }, 'access_request.not_found', u.request],
        [{ method: 'GET', url: `/api/v1/grants/${u.grant}`, as: t.admin }, 'grant.not_found', u.grant],
        [{ method: 'POST', url: `/api/v1/grants/${u.grant}/revoke`, as: t.admin, body: { reason: 'x' } }, 'grant.not_found', u.grant],
        [{ method: 'GET', url: `/api/v1/users/${u.user}`, as: t.admin }, 'user.not_found', u.user],
        [{ method: 'PATCH', url: `/api/v1/users/${u.user}`, as: t.admin, body: { disabled: true } }, 'user.not_found', u.user],
        [{ method: 'POST', url: `/api/v1/users/${u.user}/password`, as: t.admin, body: { password: 'a-long-enough-password' } }, 'user.not_found', u.user],
        [{ method: 'POST', url: `/api/v1/users/${u.user}/totp/reset`, as: t.admin }, 'user.not_found', u.user],
        [{ method: 'DELETE', url: `/api/v1/me/ssh-keys/${u.key}`, as: vendor }, 'ssh_key.not_found', u.key],
        // What another vendor may not see looks exactly like what does not exist.
        [{ method: 'GET', url: `/api/v1/requests/${pendingId}`, as: otherVendor }, 'access_request.not_found', pendingId],
        [{ method: 'POST', url: `/api/v1/requests/${pendingId}/cancel`, as: otherVendor }, 'access_request.not_found', pendingId],
        [{ method: 'GET', url: `/api/v1/grants/${grantId}`, as: otherVendor }, 'grant.not_found', grantId],
      ];
      for (const [attempt, code, id] of cases) {
        const { message } = await expectRefused(attempt, 404, code);
        expect(message).toContain(id);
      }
      // An unknown user, or one without the approver role, cannot be made an approver.
      for (const id of [u.user, vendor.id]) {
        await expectRefused(
          {
            method: 'PUT',
            url: `/api/v1/zones/${zoneId}/approvers`,
            as: t.admin,
            body: { userIds: [approver.id, id] },
          },
          400,
          'zone.approver_not_eligible',
          id,
        );
      }
    });
  });

  describe('conflicts and rules', () => {
    it('refuses duplicates and rule violations with their own codes, leaving no partial rows', async () => {
      const connector = await t.call('POST', '/api/v1/connectors', {
        token: t.admin.token,
        body: { name: 'edge-dup', zoneId },
      });
      expect(connector.status).toBe(201);
      const granted = await fileRequest({
        assetIds: [assetId],
        durationMinutes: 30,
        reason: 'Revoke twice',
      });
      const grant = (
        await t.call('POST', `/api/v1/requests/${granted}/approve`, {
          token: approver.token,
          body: {},
        })
      ).body.grantIds[0] as string;
      const revoked = await t.call('POST', `/api/v1/grants/${grant}/revoke`, {
        token: t.admin.token,
        body: { reason: 'first' },
      });
      expect(revoked.status).toBe(200);
      const modbus = { zoneId, host: '10.0.0.7', port: 502, protocol: 'modbus' };
      // prettier-ignore
      const cases: [Attempt, number, ErrorCode][] = [
        // A new organization named with a taken username must not be left behind.
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { username: 'vera', password: USER_PASSWORD, roles: ['vendor'], organization: 'Brand New Org' } }, 409, 'user.username_taken'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { username: 'weak', password: 'short-pw', roles: ['auditor'] } }, 400, 'user.weak_password'],
        [{ method: 'POST', url: '/api/v1/users', as: t.admin, body: { username: 'noorg', password: USER_PASSWORD, roles: ['vendor'] } }, 400, 'user.organization_required'],
        [{ method: 'PATCH', url: `/api/v1/users/${auditor.id}`, as: t.admin, body: { roles: ['vendor'] } }, 400, 'user.organization_required'],
        [{ method: 'POST', url: `/api/v1/users/${otherVendor.id}/password`, as: t.admin, body: { password: 'short-pw' } }, 400, 'user.weak_password'],
        [{ method: 'POST', url: '/api/v1/zones', as: t.admin, body: { name: zoneName } }, 409, 'zone.name_taken'],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...modbus, name: 'plc-01', credential: CREDENTIAL } }, 409, 'asset.name_taken'],
        [{ method: 'POST', url: '/api/v1/connectors', as: t.admin, body: { name: 'edge-dup', zoneId } }, 409, 'connector.name_taken'],
        [{ method: 'POST', url: `/api/v1/grants/${grant}/revoke`, as: t.admin, body: { reason: 'again' } }, 409, 'grant.already_revoked'],
        [{ method: 'POST', url: `/api/v1/requests/${granted}/approve`, as: approver, body: {} }, 412, 'access_request.not_pending'],
        [{ method: 'PUT', url: '/api/v1/me/webhook', as: vendor, body: { url: 'ftp://hooks.example/x' } }, 400, 'webhook.invalid_url'],
        [{ method: 'PUT', url: '/api/v1/me/webhook', as: vendor, body: { url: 'https://user:pass@hooks.example/x' } }, 400, 'webhook.invalid_url'],
      ];
      for (const [attempt, status, code] of cases) await expectRefused(attempt, status, code);
      const orgs = await t.db.pool.query('select 1 from organizations where name = $1', [
        'Brand New Org',
      ]);
      expect(orgs.rowCount).toBe(0);
    });
  });

  describe('access windows', () => {
    it('refuses windows that end before they start, lie in the past, are ambiguous or exceed the zone policy', async () => {
      const base = { assetIds: [assetId], reason: 'Window test' };
      // prettier-ignore
      const cases: [Record<string, unknown>, ErrorCode, RegExp][] = [
        [{ startsAt: inMinutes(120), endsAt: inMinutes(60) }, 'access_request.invalid_window', /endsAt must be after startsAt/],
        [{ startsAt: inMinutes(60), endsAt: inMinutes(60) }, 'access_request.invalid_window', /endsAt must be after startsAt/],
        [{ endsAt: inMinutes(-10) }, 'access_request.invalid_window', /endsAt must be after startsAt/],
        [{ startsAt: inMinutes(-60), endsAt: inMinutes(60) }, 'access_request.invalid_window', /past/],
        [{ startsAt: inMinutes(91 * 24 * 60), endsAt: inMinutes(91 * 24 * 60 + 60) }, 'access_request.invalid_window', /days ahead/],
        [{ durationMinutes: 60, endsAt: inMinutes(60) }, 'access_request.invalid_window', /not both/],
        [{ durationMinutes: 60, startsAt: inMinutes(10) }, 'access_request.invalid_window', /not both/],
        [{}, 'access_request.invalid_window', /durationMinutes/],
        [{ startsAt: inMinutes(60) }, 'access_request.invalid_window', /endsAt/],
        [{ durationMinutes: 241 }, 'access_request.window_exceeds_policy', /241 minutes exceeds the 240 minutes allowed in zone Plant A \/ Packaging/],
        [{ startsAt: inMinutes(60), endsAt: inMinutes(60 + 241) }, 'access_request.window_exceeds_policy', /241 minutes exceeds the 240/],
        [{ durationMinutes: 60, capabilities: ['shell', 'sftp'] }, 'access_request.capability_not_allowed', /Capability sftp is not allowed in zone Plant A/],
        [{ durationMinutes: 60, capabilities: ['modbus_write'] }, 'access_request.capability_not_allowed', /modbus_write/],
      ];
      for (const [window, code, detail] of cases) {
        const attempt: Attempt = {
          method: 'POST',
          url: '/api/v1/requests',
          as: vendor,
          body: { ...base, ...window },
        };
        await expectRefused(attempt, 400, code, detail);
      }
      // The limit itself is allowed: the refusals above are about exceeding it.
      await fileRequest({ ...base, durationMinutes: 240 });
      await fileRequest({ ...base, startsAt: inMinutes(60), endsAt: inMinutes(300) });
    });

    it('refuses an approver’s narrowing outside the requested window, auditing the refusal', async () => {
      const fixed = await fileRequest({
        assetIds: [assetId],
        startsAt: inMinutes(60),
        endsAt: inMinutes(180),
        reason: 'Narrow me',
      });
      const cases: [Record<string, string>, RegExp][] = [
        [
          { notBefore: inMinutes(120), notAfter: inMinutes(90) },
          /notAfter must be after notBefore/,
        ],
        [{ notBefore: inMinutes(30) }, /notBefore is outside the requested window/],
        [{ notAfter: inMinutes(200) }, /notAfter is outside the requested window/],
        [{ notAfter: inMinutes(-1) }, /notAfter lies in the past/],
      ];
      for (const [narrowing, detail] of cases) {
        const { events } = await expectRefused(
          {
            method: 'POST',
            url: `/api/v1/requests/${fixed}/approve`,
            as: approver,
            body: narrowing,
          },
          400,
          'access_request.narrowing_invalid',
          detail,
        );
        expect(events.map((e) => [e.type, e.data.reason])).toEqual([
          ['access_request.decision_refused', 'access_request.narrowing_invalid'],
        ]);
      }
      const within = await t.call('POST', `/api/v1/requests/${fixed}/approve`, {
        token: approver.token,
        body: { notBefore: inMinutes(90), notAfter: inMinutes(150) },
      });
      expect(within.status).toBe(200);
      expect(within.body.status).toBe('approved');
    });
  });

  describe('roles', () => {
    it('refuses every role-restricted route to every other role, auditing each refusal', async () => {
      const byRole: Record<string, TestUser> = { admin: t.admin, approver, auditor, vendor };
      const target = await t.call('POST', '/api/v1/users', {
        token: t.admin.token,
        body: { username: 'target', password: USER_PASSWORD, roles: ['approver'] },
      });
      const targetId = target.body.id as string;
      // Bodies a holder of the role could send successfully: only the role is wrong.
      // prettier-ignore
      const routes: { method: Method; url: string; route: string; roles: string[]; body?: unknown }[] = [
        { method: 'POST', url: '/api/v1/users', route: '/api/v1/users', roles: ['admin'], body: { username: 'intruder', password: USER_PASSWORD, roles: ['admin'] } },
        { method: 'GET', url: '/api/v1/users', route: '/api/v1/users', roles: ['admin', 'auditor'] },
        { method: 'GET', url: `/api/v1/users/${targetId}`, route: '/api/v1/users/:id', roles: ['admin', 'auditor'] },
        { method: 'PATCH', url: `/api/v1/users/${targetId}`, route: '/api/v1/users/:id', roles: ['admin'], body: { roles: ['admin'] } },
        { method: 'POST', url: `/api/v1/users/${targetId}/password`, route: '/api/v1/users/:id/password', roles: ['admin'], body: { password: 'a-takeover-password' } },
        { method: 'POST', url: `/api/v1/users/${targetId}/totp/reset`, route: '/api/v1/users/:id/totp/reset', roles: ['admin'] },
        { method: 'POST', url: '/api/v1/zones', route: '/api/v1/zones', roles: ['admin'], body: { name: 'Shadow zone' } },
        { method: 'PATCH', url: `/api/v1/zones/${zoneId}`, route: '/api/v1/zones/:id', roles: ['admin'], body: { policy: { maxWindowMinutes: 10080 } } },
        { method: 'PUT', url: `/api/v1/zones/${zoneId}/approvers`, route: '/api/v1/zones/:id/approvers', roles: ['admin'], body: { userIds: [targetId] } },
        { method: 'POST', url: '/api/v1/assets', route: '/api/v1/assets', roles: ['admin'], body: { name: 'rogue-01', zoneId, host: '10.0.0.66', port: 22, protocol: 'tcp' } },
        { method: 'PATCH', url: `/api/v1/assets/${assetId}`, route: '/api/v1/assets/:id', roles: ['admin'], body: { host: '203.0.113.7' } },
        { method: 'POST', url: '/api/v1/connectors', route: '/api/v1/connectors', roles: ['admin'], body: { name: 'rogue-connector', zoneId } },
        { method: 'GET', url: '/api/v1/connectors', route: '/api/v1/connectors', roles: ['admin', 'auditor', 'approver'] },
        { method: 'GET', url: '/api/v1/audit', route: '/api/v1/audit', roles: ['auditor', 'admin'] },
        { method: 'GET', url: '/api/v1/audit/verify', route: '/api/v1/audit/verify', roles: ['auditor', 'admin'] },
        { method: 'GET', url: '/api/v1/audit/export', route: '/api/v1/audit/export', roles: ['auditor', 'admin'] },
        { method: 'POST', url: '/api/v1/requests', route: '/api/v1/requests', roles: ['vendor'], body: { assetIds: [assetId], durationMinutes: 30, reason: 'x' } },
        { method: 'POST', url: `/api/v1/requests/${pendingId}/approve`, route: '/api/v1/requests/:id/approve', roles: ['approver'], body: {} },
        { method: 'POST', url: `/api/v1/requests/${pendingId}/deny`, route: '/api/v1/requests/:id/deny', roles: ['approver'], body: { reason: 'no' } },
        { method: 'POST', url: `/api/v1/requests/${pendingId}/cancel`, route: '/api/v1/requests/:id/cancel', roles: ['vendor'] },
        { method: 'POST', url: `/api/v1/grants/${grantId}/revoke`, route: '/api/v1/grants/:id/revoke', roles: ['admin', 'approver'], body: { reason: 'x' } },
      ];
      let refusals = 0;
      for (const r of routes) {
        for (const [role, user] of Object.entries(byRole)) {
          if (r.roles.includes(role)) continue;
          const attempt: Attempt = {
            method: r.method,
            url: r.url,
            as: user,
            ...(r.body === undefined ? {} : { body: r.body }),
          };
          const { events, message } = await expectRefused(attempt, 403, 'auth.forbidden_role');
          expect(message).toBe(`This action requires one of the roles: ${r.roles.join(', ')}.`);
          expect(events).toEqual([
            {
              type: 'auth.permission_denied',
              outcome: 'failure',
              actor_id: user.id,
              data: { method: r.method, route: r.route, required: r.roles },
            },
          ]);
          refusals++;
        }
      }
      expect(refusals).toBe(55);
    });

    it('answers an unknown route with route.not_found, signed in or not', async () => {
      const unknown: [Method, string][] = [
        ['GET', '/api/v1/nope'],
        ['GET', '/api/v2/zones'],
        ['DELETE', '/api/v1/zones'],
        ['POST', `/api/v1/zones/${zoneId}`],
        ['PUT', '/api/v1/assets'],
        ['GET', `/api/v1/users/${vendor.id}/secrets`],
        ['GET', '/index.php'],
      ];
      for (const [method, url] of unknown) {
        for (const as of [null, t.admin])
          await expectRefused({ method, url, as }, 404, 'route.not_found');
      }
    });
  });

  describe('tokens and brute force', () => {
    it('refuses expired, forged, unsigned and misaddressed tokens on a write, changing nothing', async () => {
      const claims = JSON.parse(
        Buffer.from(t.admin.token.split('.')[1] ?? '', 'base64url').toString(),
      ) as Record<string, unknown>;
      const sign = (payload: Record<string, unknown>, key: KeyObject = signingKeys.privateKey) =>
        new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' }).sign(key);
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const now = Math.floor(t.clock.now().getTime() / 1000);
      // The control: a token made here with the broker's key and the admin's claims works.
      const control = await t.call('POST', '/api/v1/zones', {
        token: await sign({ ...claims, jti: 'control' }),
        body: { name: 'Created with a good token' },
      });
      expect(control.status).toBe(201);

      const tokens: Record<string, string> = {
        expired: await sign({ ...claims, iat: now - 7200, nbf: now - 7200, exp: now - 3600 }),
        forged: await sign(claims, generateKeyPairSync('ed25519').privateKey),
        'alg none': `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`,
        'wrong audience': await sign({ ...claims, aud: 'connector:zon_x' }),
        'wrong issuer': await sign({ ...claims, iss: 'someone-else' }),
        garbage: 'not.a.token',
      };
      for (const [label, token] of Object.entries(tokens)) {
        const attempt: Attempt = {
          method: 'POST',
          url: '/api/v1/zones',
          as: { ...t.admin, token },
          body: { name: `Created with a bad token (${label})` },
        };
        const { events } = await expectRefused(attempt, 401, 'auth.token_invalid');
        expect(
          events.map((e) => [e.type, e.data.reason]),
          label,
        ).toEqual([['auth.token_rejected', 'auth.token_invalid']]);
      }
    });

    it('counts brute-force sign-ins, locks, and writes nothing else', async () => {
      const created = await t.call('POST', '/api/v1/users', {
        token: t.admin.token,
        body: {
          username: 'brutus',
          password: USER_PASSWORD,
          roles: ['vendor'],
          organization: 'Rome',
        },
      });
      expect(created.status).toBe(201);
      const codes: string[] = [];
      const events: string[] = [];
      for (let i = 0; i < 7; i++) {
        const attempt: Attempt = {
          method: 'POST',
          url: '/api/v1/auth/login',
          as: null,
          body: { username: 'brutus', password: `guess-number-${i}` },
        };
        const locked = i >= 5;
        const result = await expectRefused(
          attempt,
          locked ? 429 : 401,
          locked ? 'auth.locked' : 'auth.invalid_credentials',
        );
        codes.push(result.res.body.error.code as string);
        events.push(...result.events.map((e) => e.type));
      }
      expect(events.filter((e) => e === 'user.locked')).toHaveLength(1);
      expect(events.filter((e) => e === 'user.login_failed')).toHaveLength(7);
    });
  });

  describe('asset credentials', () => {
    it('never returns a credential, nor writes it to the audit trail, nor stores it in the clear', async () => {
      const { publicKey } = generateKeyPairSync('ed25519');
      const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
      const sshString = (b: Buffer) => {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(b.length);
        return Buffer.concat([length, b]);
      };
      const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(x)]);
      const hostKey = `ssh-ed25519 ${blob.toString('base64')}`;
      const seen: string[] = [];
      const record = (res: ApiResponse): ApiResponse => {
        seen.push(typeof res.body === 'string' ? res.body : JSON.stringify(res.body));
        return res;
      };

      const created = record(
        await t.call('POST', '/api/v1/assets', {
          token: t.admin.token,
          body: {
            name: 'hmi-ssh',
            zoneId,
            host: 'hmi.plant.local',
            port: 22,
            protocol: 'ssh',
            login: 'maint',
            credential: PRIVATE_KEY_PEM,
            hostKey,
          },
        }),
      );
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ hasCredential: true, credentialKind: 'private_key' });
      const sshAsset = created.body.id as string;
      for (const user of [t.admin, approver, auditor, vendor]) {
        for (const id of [assetId, sshAsset])
          expect(
            record(await t.call('GET', `/api/v1/assets/${id}`, { token: user.token })).status,
          ).toBe(200);
        expect(record(await t.call('GET', '/api/v1/assets', { token: user.token })).status).toBe(
          200,
        );
      }
      const plc = record(
        await t.call('GET', `/api/v1/assets/${assetId}`, { token: t.admin.token }),
      );
      expect(plc.body).toMatchObject({ hasCredential: true, credentialKind: 'password' });
      const rotated = record(
        await t.call('PATCH', `/api/v1/assets/${assetId}`, {
          token: t.admin.token,
          body: { credential: CREDENTIAL_2 },
        }),
      );
      expect(rotated.status).toBe(200);
      const moved = record(
        await t.call('PATCH', `/api/v1/assets/${sshAsset}`, {
          token: t.admin.token,
          body: { port: 2222 },
        }),
      );
      expect(moved.status).toBe(200);

      // Refused writes that carry a credential do not echo it either.
      const bad = { zoneId, port: 502, protocol: 'modbus', credential: CREDENTIAL };
      // prettier-ignore
      const refusals: [Attempt, RegExp][] = [
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...bad, name: 'bad-host', host: 'not a host!' } }, /host must be a hostname/],
        [{ method: 'PATCH', url: `/api/v1/assets/${assetId}`, as: t.admin, body: { credential: CREDENTIAL, hostKey: CREDENTIAL } }, /hostKey/],
        [{ method: 'POST', url: '/api/v1/assets', as: t.admin, body: { ...bad, name: 'no-key', host: '10.0.0.8', port: 22, protocol: 'ssh' } }, /no trust on first use/],
      ];
      for (const [attempt, detail] of refusals)
        await expectRefused(attempt, 400, 'asset.invalid', detail);

      // The audit trail, through the API.
      record(await t.call('GET', '/api/v1/audit?limit=1000', { token: auditor.token }));
      const exported = record(
        await t.call('GET', '/api/v1/audit/export', { token: auditor.token }),
      );
      expect(exported.status).toBe(200);
      expect(String(exported.body)).toContain('asset.updated');
      // No response has a field for it at all, not even an empty one.
      expect(/.{0,160}"credential"\s*:.{0,60}/.exec(seen.join('\n'))?.[0]).toBeUndefined();

      // The audit table itself, and the assets table (sealed at rest, not in the clear).
      const { rows } = await t.db.pool.query<{ text: string }>(
        `select row_to_json(e)::text as text from audit_events e
         union all select row_to_json(a)::text from assets a`,
      );
      seen.push(...rows.map((r) => r.text));
      const everything = seen.join('\n');
      expect(everything).toContain('hmi-ssh'); // the sweep did see the assets
      for (const secret of [CREDENTIAL, CREDENTIAL_2, PRIVATE_KEY_BODY, 'PRIVATE KEY'])
        expect(everything).not.toContain(secret);
    });
  });
});
