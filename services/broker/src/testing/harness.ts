/**
 * A broker for tests: real PostgreSQL (a database of its own), real Redis for
 * the BullMQ variant, an injected ManualClock, and the HTTP app driven through
 * `app.inject()`. Jobs never poll on their own here: tests move the clock and
 * call `jobs.runDue()`.
 */
import { configForTest, type AirlockConfig } from '@airlock/config';
import { generateMasterKey, parseMasterKey, totpCode } from '@airlock/crypto';
import { ManualClock, type Role } from '@airlock/domain';
import type { JobRunner } from '@airlock/jobs';
import {
  createTestDatabase,
  testRedisUrl,
  uniqueQueueName,
  type TestDatabase,
} from '@airlock/test-support';
import { base32Decode } from '@airlock/crypto';
import { buildApp } from '../app.js';
import { ensureAdminUser } from '../bootstrap.js';
import type { BrokerContext } from '../context.js';
import { createBrokerContext } from '../context-factory.js';
import type { App } from '../http/app-types.js';
import { createLifecycleRunner } from '../jobs.js';
import { createLogger } from '../logger.js';
import { Secret } from '@airlock/domain';

export type JobTransport = 'in-process' | 'bullmq';

export const ADMIN_PASSWORD = 'admin-password-for-tests';
export const USER_PASSWORD = 'user-password-for-tests';

export interface ApiResponse<T = any> {
  readonly status: number;
  readonly body: T;
  readonly headers: Record<string, unknown>;
}

export interface TestUser {
  readonly id: string;
  readonly username: string;
  readonly token: string;
  readonly totpSecret: Buffer | null;
}

export interface TestBroker {
  readonly ctx: BrokerContext;
  readonly app: App;
  readonly jobs: JobRunner;
  readonly clock: ManualClock;
  readonly db: TestDatabase;
  readonly admin: TestUser;
  call<T = any>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<ApiResponse<T>>;
  /** Creates a user through the admin API, signs in, enrols TOTP where the role requires it. */
  user(username: string, roles: Role[], options?: { organization?: string }): Promise<TestUser>;
  /** A TOTP code for the current (injected) time. */
  totp(user: TestUser, offsetSteps?: number): string;
  auditTypes(): Promise<string[]>;
  close(): Promise<void>;
}

export async function createTestBroker(
  options: {
    /** Base64; pin it to derive the broker's own keys in a test (e.g. to sign tokens). Random by default. */
    masterKey?: string;
    jobs?: JobTransport;
    config?: Partial<AirlockConfig>;
    start?: Date | string;
  } = {},
): Promise<TestBroker> {
  const db = await createTestDatabase();
  const clock = new ManualClock(options.start ?? '2026-03-02T08:00:00.000Z');
  const config = configForTest({
    logLevel: 'silent',
    adminPassword: new Secret(ADMIN_PASSWORD),
    // Long-lived tokens so lifecycle tests can move the clock by hours.
    accessTokenTtlSeconds: 7 * 24 * 3600,
    authSessionTtlSeconds: 7 * 24 * 3600,
    ...options.config,
  });
  const ctx = createBrokerContext({
    config,
    pool: db.pool,
    clock,
    log: createLogger('silent'),
    masterKey: parseMasterKey(options.masterKey ?? generateMasterKey()),
    defaultMetrics: false,
  });
  const jobs = createLifecycleRunner(ctx, {
    redisUrl: options.jobs === 'bullmq' ? testRedisUrl() : undefined,
    queueName: uniqueQueueName(),
    // Jobs run when a test says so (runDue), never behind its back.
    pollIntervalMs: 3_600_000,
  });
  await jobs.start();
  const app = await buildApp(ctx);
  await ensureAdminUser(ctx, () => undefined);

  const call: TestBroker['call'] = async (method, url, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    const response = await app.inject({
      method,
      url,
      headers,
      ...(o.body === undefined ? {} : { payload: o.body as string | object }),
    });
    const text = response.body;
    let body: unknown = text;
    if (
      (response.headers['content-type'] ?? '').toString().includes('application/json') &&
      text !== ''
    )
      body = JSON.parse(text);
    return { status: response.statusCode, body: body as any, headers: response.headers };
  };

  const signIn = async (username: string, password: string): Promise<TestUser> => {
    const login = await call('POST', '/api/v1/auth/login', { body: { username, password } });
    if (login.status !== 200)
      throw new Error(`login ${username}: ${login.status} ${JSON.stringify(login.body)}`);
    let token: string = login.body.token;
    let totpSecret: Buffer | null = null;
    if (login.body.totpEnrollmentRequired === true) {
      const started = await call('POST', '/api/v1/me/totp', { token });
      totpSecret = base32Decode(started.body.secret);
      const confirmed = await call('POST', '/api/v1/me/totp/confirm', {
        token,
        body: { code: totpCode(totpSecret, clock.now().getTime()) },
      });
      if (confirmed.status !== 200)
        throw new Error(`totp confirm ${username}: ${JSON.stringify(confirmed.body)}`);
      token = confirmed.body.token;
    }
    return { id: login.body.user.id, username, token, totpSecret };
  };

  const admin = await signIn('admin', ADMIN_PASSWORD);

  return {
    ctx,
    app,
    jobs,
    clock,
    db,
    admin,
    call,
    async user(username, roles, o = {}) {
      const created = await call('POST', '/api/v1/users', {
        token: admin.token,
        body: {
          username,
          password: USER_PASSWORD,
          roles,
          ...(o.organization === undefined ? {} : { organization: o.organization }),
        },
      });
      if (created.status !== 201)
        throw new Error(`create ${username}: ${created.status} ${JSON.stringify(created.body)}`);
      return signIn(username, USER_PASSWORD);
    },
    totp(user, offsetSteps = 0) {
      if (user.totpSecret === null) throw new Error(`${user.username} has no TOTP`);
      return totpCode(user.totpSecret, clock.now().getTime() + offsetSteps * 30_000);
    },
    async auditTypes() {
      const { rows } = await db.pool.query<{ type: string }>(
        'select type from audit_events order by seq',
      );
      return rows.map((r) => r.type);
    },
    async close() {
      await app.close();
      await jobs.close();
      await db.drop();
    },
  };
}
