/**
 * What the tunnel refuses, on both sides, each audited. Against the real
 * broker process: enrolment token reuse and expiry, forged and replayed
 * assertions, a connector of one zone claiming a stream of another, and a
 * connector refusing an open (audited by the broker). Against the real
 * connector process, with a broker played by this test: opens for an
 * endpoint outside the zone, without a valid grant token (forged, for another
 * zone, outside its window, not matching the request) or replayed — each
 * refused, written to the connector's own audit log and reported back.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CONTROL_PATH,
  encodeMessage,
  ENROLL_PATH,
  publicKeyToPem,
  signAssertion,
  signGrantToken,
  STREAM_PATH_PREFIX,
  type ConnectorMessage,
  type GrantTokenClaims,
} from '@airlock/tunnel';
import {
  createEmptyDatabase,
  runProgram,
  runSsh,
  sshArgs,
  startSshd,
  type SshdFixture,
} from '@airlock/test-support';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createZone,
  createUser,
  createVendor,
  eventually,
  expectStatus,
  gatewayTarget,
  grantAccess,
  randomPassword,
  signIn,
  type SignedIn,
  type SshAsset,
} from './support/airlock.js';
import { killBroker, spawnBroker, type BrokerProcess } from './support/broker.js';
import { runConnector, spawnConnector, type ConnectorProcess } from './support/connector.js';
import { apiClient, type ApiClient } from './support/http.js';
import {
  FAKE_CONNECTOR,
  FAKE_ZONE,
  startFakeBroker,
  type FakeBroker,
} from './support/fake-broker.js';

const LONG = 120_000;

/** Opens a WebSocket with a bearer assertion; resolves with the socket or the HTTP status that refused it. */
function upgrade(
  url: string,
  assertion: string,
): Promise<{ status: number; ws: WebSocket | null }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${assertion}` },
      perMessageDeflate: false,
    });
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, ws: null });
    });
    ws.once('error', () => resolve({ status: 0, ws: null }));
  });
}

interface AuditEvent {
  type: string;
  outcome: string;
  subjectId: string | null;
  data: Record<string, unknown>;
}

describe('zone connector refusals, against the real broker', () => {
  let dir = '';
  let database: { url: string; drop(): Promise<void> } | null = null;
  let db: pg.Pool;
  let sshd: SshdFixture | null = null;
  let broker: BrokerProcess | null = null;
  let api: ApiClient;
  let admin: SignedIn;
  let approver: SignedIn;
  let zoneA: string;
  let zoneB: string;
  const running: ConnectorProcess[] = [];

  const wsUrl = (path: string): string => `${broker!.httpUrl.replace(/^http/, 'ws')}${path}`;

  const createConnector = async (name: string, zoneId: string) =>
    expectStatus(
      await api.post('/api/v1/connectors', { name, zoneId }, admin.token),
      201,
      `create ${name}`,
    ).body as { id: string; enrollmentToken: string };

  const auditOf = async (type: string): Promise<AuditEvent[]> =>
    expectStatus(await api.get(`/api/v1/audit?type=${type}&limit=1000`, admin.token), 200, type)
      .body.events;

  /** Enrols as a connector would, with a key of the test's own. */
  const enrolByHand = async (
    zoneId: string,
    name: string,
  ): Promise<{ id: string; privateKey: KeyObject; audience: string }> => {
    const created = await createConnector(name, zoneId);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const res = expectStatus(
      await api.post(ENROLL_PATH, {
        token: created.enrollmentToken,
        publicKey: publicKeyToPem(publicKey),
        version: 'test',
      }),
      200,
      'enrol',
    );
    return { id: created.id, privateKey, audience: res.body.audience as string };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-e2e-connector-sec-'));
    database = await createEmptyDatabase();
    db = new pg.Pool({ connectionString: database.url, max: 2 });
    sshd = await startSshd();
    const adminPassword = randomPassword();
    broker = await spawnBroker({
      dataDir: join(dir, 'broker'),
      env: {
        DATABASE_URL: database.url,
        AIRLOCK_ADMIN_PASSWORD: adminPassword,
        AIRLOCK_MASTER_KEY: randomBytes(32).toString('base64'),
      },
    });
    api = apiClient(broker.httpUrl);
    admin = await signIn(api, 'admin', adminPassword);
    approver = await createUser(api, admin, { username: 'alice', roles: ['approver'] });
    zoneA = await createZone(api, admin, approver, 'Plant A / Dosing');
    zoneB = await createZone(api, admin, approver, 'Plant B / Intake');
  }, LONG);

  afterAll(async () => {
    for (const connector of running) await connector.stop('SIGKILL').catch(() => undefined);
    await killBroker(broker);
    await sshd?.stop();
    await db?.end();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it(
    'refuses an enrolment token used twice, and an expired one, auditing each with its reason',
    async () => {
      const first = await createConnector('dosing-gw-1', zoneA);
      const enrolled = await spawnConnector({
        brokerUrl: broker!.httpUrl,
        dataDir: join(dir, 'gw-1'),
        enroll: first.enrollmentToken,
      });
      running.push(enrolled);
      expect(enrolled.connectorId).toBe(first.id);

      // The same token again, from another machine (a fresh data dir): refused.
      const reuse = runConnector({
        brokerUrl: broker!.httpUrl,
        dataDir: join(dir, 'thief'),
        enroll: first.enrollmentToken,
      });
      expect((await reuse.exited).code).toBe(1);
      expect(reuse.stderr()).toContain('enrolment refused (HTTP 401)');
      expect(reuse.stderr()).toContain('already been used');
      // The refusal is on the connector's side of the record too.
      expect(readFileSync(join(dir, 'thief', 'audit.log'), 'utf8')).toContain(
        '"event":"connector.enrollment_refused","broker"',
      );

      const second = await createConnector('dosing-gw-2', zoneA);
      await db.query(
        `update connectors set enrollment_expires_at = now() - interval '1 minute' where id = $1`,
        [second.id],
      );
      const expired = runConnector({
        brokerUrl: broker!.httpUrl,
        dataDir: join(dir, 'late'),
        enroll: second.enrollmentToken,
      });
      expect((await expired.exited).code).toBe(1);
      expect(expired.stderr()).toContain('enrolment refused (HTTP 401)');

      const refusals = await auditOf('connector.enrollment_refused');
      expect(refusals.map((e) => [e.subjectId, e.data.reason, e.outcome])).toEqual(
        expect.arrayContaining([
          [first.id, 'already_used', 'failure'],
          [second.id, 'expired', 'failure'],
        ]),
      );
      // The thief's key was never stored: the connector keeps the key it enrolled.
      const { rows } = await db.query<{ public_key: string }>(
        'select public_key from connectors where id = $1',
        [first.id],
      );
      const enrolledKey = createPrivateKey(readFileSync(join(dir, 'gw-1', 'connector.key')));
      expect(rows[0]!.public_key).toBe(publicKeyToPem(createPublicKey(enrolledKey)));
    },
    LONG,
  );

  it('refuses a forged assertion and a replayed one, auditing each', async () => {
    const gw1 = running[0]!;
    const identity = JSON.parse(readFileSync(join(gw1.dataDir, 'identity.json'), 'utf8')) as {
      audience: string;
    };
    const realKey = createPrivateKey(readFileSync(join(gw1.dataDir, 'connector.key')));

    const forged = await signAssertion({
      privateKey: generateKeyPairSync('ed25519').privateKey,
      connectorId: gw1.connectorId,
      audience: identity.audience,
      purpose: 'control',
    });
    expect((await upgrade(wsUrl(CONTROL_PATH), forged)).status).toBe(401);

    const genuine = await signAssertion({
      privateKey: realKey,
      connectorId: gw1.connectorId,
      audience: identity.audience,
      purpose: 'control',
    });
    const once = await upgrade(wsUrl(CONTROL_PATH), genuine);
    expect(once.status).toBe(101);
    once.ws!.close();
    expect((await upgrade(wsUrl(CONTROL_PATH), genuine)).status).toBe(401);

    const refused = await auditOf('connector.assertion_refused');
    const reasons = refused
      .filter((e) => e.data.claimedConnector === gw1.connectorId)
      .map((e) => e.data.reason);
    expect(reasons).toEqual(expect.arrayContaining(['signature', 'replayed']));
    expect(refused.every((e) => e.outcome === 'failure')).toBe(true);
  });

  it(
    'refuses a connector of another zone claiming a stream, and audits a connector refusing an open',
    async () => {
      // Zone A is served by a connector played by this test; zone B by another. The real
      // one of zone A is disabled by the admin: every replica drops its link, and its
      // identity is refused when it dials again.
      const gw1 = running[0]!;
      const from = gw1.stdout().length;
      const disabled = await api.post(
        `/api/v1/connectors/${gw1.connectorId}/disable`,
        { reason: 'host retired' },
        admin.token,
      );
      expect(disabled.status).toBe(200);
      expect(disabled.body.status).toBe('disabled');
      await gw1.waitForOutput(/"status":401,.*the broker refused the control link/, 30_000, from);
      await gw1.stop();
      running.splice(0);
      expect(readFileSync(join(gw1.dataDir, 'audit.log'), 'utf8')).toMatch(
        /"event":"link\.refused".*"status":401/,
      );
      const disabledEvents = await auditOf('connector.disabled');
      expect(disabledEvents.map((e) => e.subjectId)).toEqual([gw1.connectorId]);
      const inA = await enrolByHand(zoneA, 'dosing-gw-9');
      const inB = await enrolByHand(zoneB, 'intake-gw-1');
      const control = await upgrade(
        wsUrl(CONTROL_PATH),
        await signAssertion({
          privateKey: inA.privateKey,
          connectorId: inA.id,
          audience: inA.audience,
          purpose: 'control',
        }),
      );
      expect(control.status).toBe(101);
      const opens: { streamId: string }[] = [];
      control.ws!.on('message', (data) => {
        const message = JSON.parse((data as Buffer).toString('utf8')) as {
          type: string;
          streamId: string;
        };
        if (message.type === 'open') opens.push(message);
      });

      const created = expectStatus(
        await api.post(
          '/api/v1/assets',
          {
            name: 'dosing-hmi',
            zoneId: zoneA,
            host: sshd!.host,
            port: sshd!.port,
            protocol: 'ssh',
            login: sshd!.user.name,
            credential: sshd!.user.password,
            hostKey: sshd!.hostPublicKey,
          },
          admin.token,
        ),
        201,
        'asset',
      );
      const asset: SshAsset = { zoneId: zoneA, assetId: created.body.id, name: 'dosing-hmi' };
      const vera = await createVendor(api, admin, join(dir, 'keys'), 'vera');
      await grantAccess(api, vera, approver, asset);
      const exec = runSsh(
        [...sshArgs(gatewayTarget(broker!.sshAddress, vera, asset.name)), 'true'],
        {
          timeoutMs: 30_000,
        },
      );
      const open = await eventually('an open for zone A', () => Promise.resolve(opens[0]));

      // The zone-B connector, with a valid assertion of its own, claims zone A's stream.
      const claim = await upgrade(
        wsUrl(`${STREAM_PATH_PREFIX}${open.streamId}`),
        await signAssertion({
          privateKey: inB.privateKey,
          connectorId: inB.id,
          audience: inB.audience,
          purpose: 'stream',
          streamId: open.streamId,
        }),
      );
      expect(claim.status).toBe(403);

      // The zone-A connector refuses the open; the broker audits it and the session fails.
      const refusal: ConnectorMessage = {
        type: 'refused',
        streamId: open.streamId,
        code: 'window_closed',
        detail: 'not now',
      };
      control.ws!.send(encodeMessage(refusal));
      const result = await exec;
      expect(result.code).not.toBe(0);
      control.ws!.close();

      const refused = await auditOf('connector.stream_refused');
      expect(
        refused.some(
          (e) =>
            e.data.side === 'broker' &&
            e.data.reason === 'wrong_zone' &&
            e.data.streamId === open.streamId &&
            e.data.connectorZoneId === zoneB,
        ),
      ).toBe(true);
      expect(
        refused.some(
          (e) =>
            e.data.side === 'connector' &&
            e.data.reason === 'window_closed' &&
            e.data.streamId === open.streamId,
        ),
      ).toBe(true);
    },
    LONG,
  );
});

describe('the real connector refuses what a broker should not ask, and says so', () => {
  let dir = '';
  let echo: Server;
  let echoPort = 0;
  let broker: FakeBroker;
  const ZONE = FAKE_ZONE;
  const OTHER_ZONE = 'zon_bbbbbbbbbbbbbbbbbbbb';
  const ASSET = 'ast_aaaaaaaaaaaaaaaaaaaa';
  let connector: ConnectorProcess | null = null;
  const control = (): WebSocket => broker.control()!;
  let fromConnector: ConnectorMessage[] = [];
  let streams = new Map<string, WebSocket>();
  let brokerKeys: FakeBroker['keys'];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-e2e-fake-broker-'));
    echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as AddressInfo).port;
    broker = await startFakeBroker({
      assets: [{ assetId: ASSET, host: '127.0.0.1', ports: [echoPort] }],
    });
    ({ fromConnector, streams, keys: brokerKeys } = broker);
    connector = await spawnConnector({
      brokerUrl: broker.url,
      dataDir: join(dir, 'connector'),
      enroll: 'alenr_fake',
    });
  }, LONG);

  afterAll(async () => {
    await connector?.stop('SIGKILL');
    await broker?.close();
    await new Promise((resolve) => echo?.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const claims = (overrides: Partial<GrantTokenClaims> = {}): GrantTokenClaims => ({
    zoneId: ZONE,
    grantId: 'grt_aaaaaaaaaaaaaaaaaaaa',
    userId: 'usr_aaaaaaaaaaaaaaaaaaaa',
    sessionId: 'ses_aaaaaaaaaaaaaaaaaaaa',
    streamId: `stm_${randomBytes(12).toString('base64url')}`,
    assetId: ASSET,
    host: '127.0.0.1',
    port: echoPort,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    ...overrides,
  });

  const open = async (
    c: GrantTokenClaims,
    options: { key?: KeyObject; request?: Partial<{ host: string; port: number }> } = {},
  ) => {
    const message = {
      type: 'open' as const,
      streamId: c.streamId,
      grantToken: await signGrantToken(options.key ?? brokerKeys.privateKey, c),
      assetId: c.assetId,
      host: options.request?.host ?? c.host,
      port: options.request?.port ?? c.port,
    };
    control().send(encodeMessage(message));
    return message;
  };

  it(
    'opens a stream for a valid grant to a listed endpoint, and refuses every other request',
    async () => {
      const good = claims();
      const message = await open(good);
      const stream = await eventually('the reverse-dialled stream', () =>
        Promise.resolve(streams.get(good.streamId)),
      );
      const echoed = new Promise<string>((resolve) =>
        stream.once('message', (data) => resolve((data as Buffer).toString('utf8'))),
      );
      stream.send(Buffer.from('through-the-connector'), { binary: true });
      expect(await echoed).toBe('through-the-connector');

      const cases: { code: string; send: () => Promise<unknown> }[] = [
        // the same open again: its grant token was used
        {
          code: 'grant_replayed',
          send: () => Promise.resolve(control().send(encodeMessage(message))),
        },
        // an endpoint outside the zone's list (the asset's other port)
        {
          code: 'asset_not_in_zone',
          send: () => open(claims({ port: echoPort === 1 ? 2 : echoPort - 1 })),
        },
        // a grant token signed by another key
        {
          code: 'grant_invalid',
          send: () => open(claims(), { key: generateKeyPairSync('ed25519').privateKey }),
        },
        // a grant token for another zone
        { code: 'grant_invalid', send: () => open(claims({ zoneId: OTHER_ZONE })) },
        // a request that does not match its grant token
        { code: 'grant_invalid', send: () => open(claims(), { request: { host: '10.9.9.9' } }) },
        // a grant whose window has closed
        {
          code: 'window_closed',
          send: () =>
            open(
              claims({
                notBefore: new Date(Date.now() - 7_200_000),
                notAfter: new Date(Date.now() - 3_600_000),
              }),
            ),
        },
      ];
      for (const [i, c] of cases.entries()) {
        await c.send();
        const reply = await eventually(`refusal ${i + 1}`, () => Promise.resolve(fromConnector[i]));
        expect(reply.code, `case ${i + 1}`).toBe(c.code);
      }
      const log = readFileSync(join(dir, 'connector', 'audit.log'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { event: string; code?: string; streamId?: string });
      const refusedInLog = log.filter((l) => l.event === 'stream.refused').map((l) => l.code);
      expect(refusedInLog).toEqual(cases.map((c) => c.code));
      expect(log.some((l) => l.event === 'stream.opened' && l.streamId === good.streamId)).toBe(
        true,
      );
      // Nothing was dialled for the refused requests: only the good stream reached the broker.
      expect([...streams.keys()]).toEqual([good.streamId]);
    },
    LONG,
  );
});

describe('the connector over TLS: CA-verified or pinned, nothing else', () => {
  let dir = '';
  let broker: FakeBroker;
  let certFile = '';
  let fingerprint = '';
  const started: ConnectorProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-e2e-tls-'));
    certFile = join(dir, 'broker.crt');
    const keyFile = join(dir, 'broker.key');
    const made = await runProgram('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
    if (made.code !== 0) throw new Error(`openssl: ${made.stderr}`);
    fingerprint = new X509Certificate(readFileSync(certFile)).fingerprint256;
    broker = await startFakeBroker({
      assets: [],
      tls: { key: readFileSync(keyFile), cert: readFileSync(certFile) },
    });
  }, LONG);

  afterAll(async () => {
    for (const c of started) await c.stop('SIGKILL');
    await broker?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'enrols and links with the broker certificate as its trust anchor (and its fingerprint pinned); refuses an untrusted or mismatched certificate',
    async () => {
      const untrusted = runConnector({
        brokerUrl: broker.url,
        dataDir: join(dir, 'untrusted'),
        enroll: 'alenr_fake',
      });
      expect((await untrusted.exited).code).toBe(1);
      expect(untrusted.stderr()).toMatch(/self[- ]signed certificate/);

      const wrongPin = runConnector({
        brokerUrl: broker.url,
        dataDir: join(dir, 'wrong-pin'),
        enroll: 'alenr_fake',
        env: {
          AIRLOCK_CONNECTOR_CA_FILE: certFile,
          AIRLOCK_CONNECTOR_PIN_SHA256: Array.from({ length: 32 }, () => 'AB').join(':'),
        },
      });
      expect((await wrongPin.exited).code).toBe(1);
      expect(wrongPin.stderr()).toContain('is not the pinned');

      const pinned = await spawnConnector({
        brokerUrl: broker.url,
        dataDir: join(dir, 'pinned'),
        enroll: 'alenr_fake',
        env: { AIRLOCK_CONNECTOR_CA_FILE: certFile, AIRLOCK_CONNECTOR_PIN_SHA256: fingerprint },
      });
      started.push(pinned);
      expect(pinned.connectorId).toBe(FAKE_CONNECTOR);
      await pinned.waitForOutput(/airlock-connector linked https:\/\/localhost:/);
      expect(broker.control()).not.toBeNull();
    },
    LONG,
  );
});
