import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { appendAuditEventStandalone } from '@airlock/audit';
import type { AirlockConfig } from '@airlock/config';
import {
  createPool,
  migrate,
  startEmbeddedPostgres,
  type EmbeddedDatabase,
  type Pool,
} from '@airlock/db';
import { systemClock, type Clock } from '@airlock/domain';
import type { JobRunner } from '@airlock/jobs';
import { Redis } from 'ioredis';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { ensureAdminUser, loadOrCreateMasterKey } from './bootstrap.js';
import type { BrokerContext } from './context.js';
import { createBrokerContext } from './context-factory.js';
import { seedDemo } from './demo.js';
import type { App } from './http/app-types.js';
import { createLifecycleRunner, ensureCheckpointJob } from './jobs.js';
import { createLogger } from './logger.js';
import { startSshGateway, type SshGateway } from './gateway/server.js';
import { ConnectorHub } from './connectors/hub.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

export interface RunningBroker {
  readonly ctx: BrokerContext;
  readonly app: App;
  readonly jobs: JobRunner;
  readonly httpAddress: string;
  readonly gateway: SshGateway;
  readonly connectors: ConnectorHub;
  close(reason?: string): Promise<void>;
}

/** Opens the configured database, or starts the embedded one under the data dir. */
export async function openDatabase(
  config: AirlockConfig,
  log: Logger,
): Promise<{ pool: Pool; embedded: EmbeddedDatabase | null }> {
  let embedded: EmbeddedDatabase | null = null;
  let url = config.databaseUrl?.reveal();
  if (url === undefined) {
    log.info(
      { dataDir: config.dataDir },
      'DATABASE_URL is unset: starting the embedded PostgreSQL',
    );
    embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      log: (m) => log.debug({ postgres: m }),
    });
    url = embedded.connectionString;
  }
  const pool = createPool({ connectionString: url, applicationName: 'airlock-broker' });
  return { pool, embedded };
}

/**
 * Starts the broker: database (embedded by default), migrations, master key,
 * first admin, jobs, HTTP. Prints `airlock ready http=…` once listening.
 */
export async function startBroker(options: {
  config: AirlockConfig;
  clock?: Clock;
  demo?: boolean;
  print?: (line: string) => void;
}): Promise<RunningBroker> {
  const { config } = options;
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const clock = options.clock ?? systemClock;
  const log = createLogger(config.logLevel);
  const { pool, embedded } = await openDatabase(config, log);
  const cleanups: (() => Promise<unknown>)[] = [
    async () => pool.end(),
    async () => embedded?.stop(),
  ];
  try {
    const migrated = await migrate(pool, MIGRATIONS_DIR, (m) => log.info(m));
    log.info(
      { schemaVersion: migrated.version, applied: migrated.applied },
      'database schema is current',
    );
    const masterKey = await loadOrCreateMasterKey(config, (m) => log.warn(m));

    const redisUrl = config.redisUrl?.reveal();
    let readinessRedis: Redis | null = null;
    if (redisUrl !== undefined) {
      readinessRedis = new Redis(redisUrl, {
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
      });
      readinessRedis.on('error', () => undefined);
      const r = readinessRedis;
      cleanups.unshift(async () => r.quit().catch(() => r.disconnect()));
      await readinessRedis
        .connect()
        .catch((err: Error) => log.warn({ err: err.message }, 'redis not reachable yet'));
    }
    const ctx = createBrokerContext({
      config,
      pool,
      clock,
      log,
      masterKey,
      readiness: async () => {
        if (readinessRedis === null) return { ok: true, detail: 'in-process' };
        try {
          await readinessRedis.ping();
          return { ok: true, detail: 'bullmq' };
        } catch {
          return { ok: false, detail: 'redis unreachable' };
        }
      },
    });

    await ensureAdminUser(ctx, print);
    if (options.demo === true)
      await seedDemo(ctx, print, { connectorDataDir: join(config.dataDir, 'connector') });

    const jobs = createLifecycleRunner(ctx, { redisUrl });
    cleanups.unshift(async () => jobs.close());
    await ensureCheckpointJob(ctx);
    await jobs.start();
    log.info({ transport: jobs.transport }, 'lifecycle jobs running');

    // Connectors reach this replica through the HTTP listener (WebSocket
    // upgrades); the gateway dials assets through the hub, and the console's
    // browser terminals run their sessions in the gateway: hub, gateway, app.
    const connectors = new ConnectorHub(ctx, { heartbeatMs: config.connectorHeartbeatMs });
    cleanups.unshift(async () => connectors.close());
    const gateway = await startSshGateway(ctx, {
      host: config.bind,
      port: config.sshPort,
      pendingEndsDir: join(config.dataDir, 'pending-session-ends'),
      dialer: connectors.dialer,
    });
    cleanups.unshift(async () => gateway.close('broker_shutdown'));

    const app = await buildApp(ctx, { terminals: gateway });
    cleanups.unshift(async () => app.close());
    connectors.attach(app.server);
    await app.listen({ host: config.bind, port: config.httpPort });
    const address = app.server.address() as AddressInfo;
    const httpAddress = `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

    if (config.publicUrl === null && !/^(127\.|::1$|localhost$)/.test(config.bind))
      log.warn(
        { bind: config.bind },
        'AIRLOCK_PUBLIC_URL is unset: connectors are told http://<bound address>, which they accept on loopback only; set it to the https:// URL connectors reach this replica by',
      );
    await connectors.start(gateway.instanceId, config.publicUrl ?? `http://${httpAddress}`);

    await appendAuditEventStandalone(
      pool,
      {
        type: 'system.started',
        actor: { kind: 'system' },
        data: {
          http: httpAddress,
          ssh: gateway.address,
          jobs: jobs.transport,
          gatewayHostKey: gateway.hostKey.fingerprint,
        },
      },
      clock,
    );
    print(`airlock ready http=${httpAddress} ssh=${gateway.address}`);

    let closing: Promise<void> | null = null;
    const close = (reason = 'shutdown'): Promise<void> => {
      closing ??= (async () => {
        // Sessions first: vendors are told why, and each end is recorded while the store is up.
        await gateway.close('broker_shutdown');
        await connectors.close();
        await app.close();
        await jobs.close();
        await appendAuditEventStandalone(
          pool,
          { type: 'system.stopped', actor: { kind: 'system' }, data: { reason } },
          clock,
        ).catch((err: unknown) => log.error({ err }, 'could not record system.stopped'));
        await readinessRedis?.quit().catch(() => readinessRedis?.disconnect());
        await pool.end();
        await embedded?.stop();
      })();
      return closing;
    };
    return { ctx, app, jobs, httpAddress, gateway, connectors, close };
  } catch (err) {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
    throw err;
  }
}
