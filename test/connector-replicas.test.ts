/**
 * Two broker replicas (two real broker processes on one database, the same
 * master key) and one connector given only the first one's URL: it learns
 * the other replica from the broker and keeps a control link to each, so a
 * vendor who lands on either replica reaches the zone through it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createEmptyDatabase,
  runSsh,
  sshArgs,
  startSshd,
  type SshdFixture,
} from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSshAsset,
  createUser,
  createVendor,
  expectStatus,
  gatewayTarget,
  grantAccess,
  randomPassword,
  signIn,
  type SignedIn,
  type SshAsset,
  type Vendor,
} from './support/airlock.js';
import { killBroker, spawnBroker, type BrokerProcess } from './support/broker.js';
import { spawnConnector, type ConnectorProcess } from './support/connector.js';
import { apiClient, type ApiClient } from './support/http.js';

const LONG = 180_000;

describe('zone connector with two broker replicas', () => {
  let dir = '';
  let database: { url: string; drop(): Promise<void> } | null = null;
  let sshd: SshdFixture | null = null;
  const brokers: BrokerProcess[] = [];
  let connector: ConnectorProcess | null = null;
  let api: ApiClient;
  let admin: SignedIn;
  let vera: Vendor;
  let asset: SshAsset;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-e2e-replicas-'));
    database = await createEmptyDatabase();
    sshd = await startSshd();
    env = {
      DATABASE_URL: database.url,
      AIRLOCK_ADMIN_PASSWORD: randomPassword(),
      // Replicas share the master key: every signing key, the connectors' pinned one included.
      AIRLOCK_MASTER_KEY: randomBytes(32).toString('base64'),
      AIRLOCK_CONNECTOR_HEARTBEAT_MS: '1000',
    };
    brokers.push(await spawnBroker({ dataDir: join(dir, 'broker-1'), env }));
    brokers.push(await spawnBroker({ dataDir: join(dir, 'broker-2'), env }));
    api = apiClient(brokers[0]!.httpUrl);
    admin = await signIn(api, 'admin', env.AIRLOCK_ADMIN_PASSWORD!);
    const approver = await createUser(api, admin, { username: 'alice', roles: ['approver'] });
    asset = await createSshAsset(api, admin, approver, sshd, 'hmi-intake-01');
    vera = await createVendor(api, admin, join(dir, 'keys'), 'vera');
    await grantAccess(api, vera, approver, asset);
    const created = expectStatus(
      await api.post(
        '/api/v1/connectors',
        { name: 'intake-gw', zoneId: asset.zoneId },
        admin.token,
      ),
      201,
      'create connector',
    );
    // Told about the first replica only.
    connector = await spawnConnector({
      brokerUrl: brokers[0]!.httpUrl,
      dataDir: join(dir, 'connector'),
      enroll: created.body.enrollmentToken as string,
    });
  }, LONG);

  afterAll(async () => {
    await connector?.stop('SIGKILL');
    for (const broker of brokers) await killBroker(broker);
    await sshd?.stop();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it(
    'links to every replica it is told about, and either replica carries sessions through it',
    async () => {
      const second = brokers[1]!.httpUrl;
      await connector!.waitForOutput(
        new RegExp(`airlock-connector linked ${second.replace(/[.]/g, '\\.')}/`),
        30_000,
      );
      for (const broker of brokers) {
        const marker = randomBytes(4).toString('hex');
        const result = await runSsh(
          [...sshArgs(gatewayTarget(broker.sshAddress, vera, asset.name)), `echo via-${marker}`],
          { timeoutMs: 30_000 },
        );
        expect(result.stdout, `${broker.httpUrl}: ${result.stderr}`).toContain(`via-${marker}`);
      }
      const sessions = expectStatus(
        await api.get(`/api/v1/sessions?userId=${vera.id}`, admin.token),
        200,
        'sessions',
      ).body.sessions as { connectorId: string | null }[];
      expect(sessions).toHaveLength(2);
      for (const s of sessions) expect(s.connectorId).toBe(connector!.connectorId);
      const connected = expectStatus(
        await api.get(
          `/api/v1/audit?type=connector.connected&subjectId=${connector!.connectorId}`,
          admin.token,
        ),
        200,
        'audit',
      ).body.events as { data: { instance: string } }[];
      expect(new Set(connected.map((e) => e.data.instance)).size).toBe(2);
    },
    LONG,
  );

  it(
    'keeps serving through the surviving replica when one is killed, and links to a replica that starts later by itself',
    async () => {
      await brokers[0]!.kill();
      const survivor = brokers[1]!;
      const ssh = async (broker: BrokerProcess) => {
        const marker = randomBytes(4).toString('hex');
        const result = await runSsh(
          [...sshArgs(gatewayTarget(broker.sshAddress, vera, asset.name)), `echo via-${marker}`],
          { timeoutMs: 30_000 },
        );
        expect(result.stdout, `${broker.httpUrl}: ${result.stderr}`).toContain(`via-${marker}`);
      };
      await ssh(survivor);

      // A new replica (new address) joins; the connector hears of it from the survivor.
      const from = connector!.stdout().length;
      const joined = await spawnBroker({ dataDir: join(dir, 'broker-3'), env });
      brokers.push(joined);
      await connector!.waitForOutput(
        new RegExp(`airlock-connector linked ${joined.httpUrl.replace(/[.]/g, '\\.')}/`),
        30_000,
        from,
      );
      await ssh(joined);
    },
    LONG,
  );
});
