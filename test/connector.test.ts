/**
 * The zone connector from the outside: the real broker process (`pnpm
 * start`), real connector processes (`airlock-connector`), a real sshd as the
 * OT asset and the real OpenSSH client. The asset's zone has connectors, so
 * the broker reaches it only through them; what was carried is read from the
 * HTTP API (sessions, commands, recordings, audit) and from the connector's
 * own audit log.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createEmptyDatabase,
  interactiveSsh,
  runScp,
  runSsh,
  scpArgs,
  spawnSsh,
  sshArgs,
  startSshd,
  type InteractiveSsh,
  type SshdFixture,
} from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSshAsset,
  createUser,
  createVendor,
  endedSession,
  eventually,
  expectStatus,
  exitOf,
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
/** The machine running the suite is shared and loaded: slack on top of every deadline. */
const SLACK_MS = 2_000;
const HEARTBEAT_MS = 1_000;
const PROMPT = 'asset$ ';
const CAPABILITIES = ['shell', 'exec', 'sftp', 'forward'];

function percentile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

interface ConnectorAuditLine {
  event: string;
  sessionId?: string;
  code?: string;
  streamId?: string;
}

function connectorAudit(connector: { dataDir: string }): ConnectorAuditLine[] {
  return readFileSync(join(connector.dataDir, 'audit.log'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as ConnectorAuditLine);
}

describe('zone connector, end to end with real processes', () => {
  let dir = '';
  let database: { url: string; drop(): Promise<void> } | null = null;
  let sshd: SshdFixture | null = null;
  let echo: Server | null = null;
  let echoPort = 0;
  let broker: BrokerProcess | null = null;
  let api: ApiClient;
  let admin: SignedIn;
  let approver: SignedIn;
  let vera: Vendor;
  let asset: SshAsset;
  /** The same sshd in a zone without connectors (dialled directly). */
  let direct: SshAsset;
  const connectors = new Map<string, ConnectorProcess>();
  const enrollment = new Map<string, { id: string; token: string }>();
  const terminals: InteractiveSsh[] = [];

  const target = (extra: string[] = []) => ({
    ...gatewayTarget(broker!.sshAddress, vera, asset.name),
    extra,
  });

  const startConnector = async (name: string, options: { enroll: boolean }) => {
    const record = enrollment.get(name)!;
    const connector = await spawnConnector({
      brokerUrl: broker!.httpUrl,
      dataDir: join(dir, name),
      ...(options.enroll ? { enroll: record.token } : {}),
    });
    connectors.set(name, connector);
    return connector;
  };

  const connectorList = async (): Promise<
    {
      id: string;
      name: string;
      status: string;
      version: string;
      address: string;
      lastSeenAt: string;
    }[]
  > => {
    const res = expectStatus(
      await api.get(`/api/v1/connectors?zoneId=${asset.zoneId}`, admin.token),
      200,
      'list connectors',
    );
    return res.body.connectors;
  };

  const session = async (id: string) =>
    expectStatus(await api.get(`/api/v1/sessions/${id}`, admin.token), 200, 'session').body;

  const sessionsOfVera = async (): Promise<{ id: string; connectorId: string | null }[]> =>
    expectStatus(await api.get(`/api/v1/sessions?userId=${vera.id}`, admin.token), 200, 'sessions')
      .body.sessions;

  const openShell = async (): Promise<{ term: InteractiveSsh; sessionId: string }> => {
    const before = new Set((await sessionsOfVera()).map((s) => s.id));
    const term = interactiveSsh(sshArgs(target(['-tt'])), { cols: 100, rows: 30 });
    terminals.push(term);
    await term.waitFor(PROMPT, 20_000);
    const sessionId = await eventually('the new shell session', async () =>
      (await sessionsOfVera()).map((s) => s.id).find((id) => !before.has(id)),
    );
    return { term, sessionId };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-e2e-connector-'));
    database = await createEmptyDatabase();
    echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo!.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as { port: number }).port;
    sshd = await startSshd();
    const adminPassword = randomPassword();
    broker = await spawnBroker({
      dataDir: join(dir, 'broker'),
      env: {
        DATABASE_URL: database.url,
        AIRLOCK_ADMIN_PASSWORD: adminPassword,
        AIRLOCK_MASTER_KEY: randomBytes(32).toString('base64'),
        AIRLOCK_CONNECTOR_HEARTBEAT_MS: String(HEARTBEAT_MS),
        AIRLOCK_INSTANCE_STALE_SECONDS: '5',
      },
    });
    api = apiClient(broker.httpUrl);
    admin = await signIn(api, 'admin', adminPassword);
    approver = await createUser(api, admin, { username: 'alice', roles: ['approver'] });
    asset = await createSshAsset(api, admin, approver, sshd, 'ews-filter-01', {
      zoneName: 'Water works / Filtration',
      capabilities: CAPABILITIES,
      forwardPorts: [echoPort],
    });
    const { zoneId } = asset;
    for (const name of ['gw-a', 'gw-b']) {
      const res = expectStatus(
        await api.post('/api/v1/connectors', { name, zoneId }, admin.token),
        201,
        `create connector ${name}`,
      );
      enrollment.set(name, {
        id: res.body.id as string,
        token: res.body.enrollmentToken as string,
      });
    }
    vera = await createVendor(api, admin, join(dir, 'keys'), 'vera');
    await grantAccess(api, vera, approver, asset, { capabilities: CAPABILITIES });
    await startConnector('gw-a', { enroll: true });
  }, LONG);

  afterAll(async () => {
    for (const term of terminals) await term.close().catch(() => undefined);
    for (const connector of connectors.values()) {
      connector.signal('SIGCONT');
      await connector.stop('SIGKILL').catch(() => undefined);
    }
    await killBroker(broker);
    await sshd?.stop();
    await new Promise((resolve) => (echo === null ? resolve(null) : echo.close(resolve)));
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it(
    'enrols with the one-time token: the key stays in the data dir (0600), and the broker shows the connector online with version, address and last-seen',
    async () => {
      const gwA = connectors.get('gw-a')!;
      expect(gwA.connectorId).toBe(enrollment.get('gw-a')!.id);
      expect(statSync(join(gwA.dataDir, 'connector.key')).mode & 0o777).toBe(0o600);
      const online = await eventually('gw-a online', async () =>
        (await connectorList()).find((c) => c.name === 'gw-a' && c.status === 'online'),
      );
      expect(online).toMatchObject({ version: '0.1.0', address: '127.0.0.1' });
      expect(online.lastSeenAt).not.toBeNull();
      const metrics = await api.get('/metrics');
      expect(String(metrics.body)).toMatch(/^airlock_connector_links 1$/m);
      const audit = expectStatus(
        await api.get(`/api/v1/audit?subjectId=${gwA.connectorId}`, admin.token),
        200,
        'audit',
      );
      const types = (audit.body.events as { type: string }[]).map((e) => e.type);
      expect(types).toEqual(
        expect.arrayContaining(['connector.created', 'connector.enrolled', 'connector.connected']),
      );
    },
    LONG,
  );

  it(
    'carries shell, exec, scp and a forwarded port through the connector, recorded and audited as on the direct path',
    async () => {
      const gwA = connectors.get('gw-a')!;
      const marker = randomBytes(4).toString('hex');

      // exec, with its exit status
      const exec = await runSsh([...sshArgs(target()), `echo exec-${marker}; exit 3`], {
        timeoutMs: 30_000,
      });
      expect(exec.stdout).toContain(`exec-${marker}`);
      expect(exec.code).toBe(3);

      // an interactive shell
      const { term, sessionId: shellSession } = await openShell();
      term.write(`echo shell-${marker}\r`);
      await term.waitFor(new RegExp(`[\\r\\n]shell-${marker}\\r\\n`));
      await term.waitFor(PROMPT);
      term.write('exit\r');
      expect((await exitOf(term)).exitCode).toBe(0);

      // scp both ways, byte-identical
      const content = randomBytes(3 * 1024 * 1024 + 7);
      const local = join(dir, `up-${marker}.bin`);
      await writeFile(local, content);
      const remote = `${sshd!.workDir}/up-${marker}.bin`;
      const t = target();
      const up = await runScp([...scpArgs(t), local, `${t.user}@${t.host}:${remote}`], {
        timeoutMs: 60_000,
      });
      expect(up.code, up.stderr).toBe(0);
      const back = join(dir, `back-${marker}.bin`);
      const down = await runScp([...scpArgs(t), `${t.user}@${t.host}:${remote}`, back], {
        timeoutMs: 60_000,
      });
      expect(down.code, down.stderr).toBe(0);
      expect((await readFile(back)).equals(content)).toBe(true);

      // a forwarded port (ssh -W, a direct-tcpip channel) to a port the asset lists
      const forwarded = await runSsh(
        [...sshArgs(target(['-o', 'ExitOnForwardFailure=yes', '-W', `${asset.name}:${echoPort}`]))],
        { input: `ping-${marker}\n`, timeoutMs: 30_000 },
      );
      expect(forwarded.stdout).toContain(`ping-${marker}`);

      // Every one of these sessions went through gw-a, and is recorded as any session is.
      const sessions = await sessionsOfVera();
      expect(sessions.length).toBeGreaterThanOrEqual(5);
      for (const s of sessions) expect(s.connectorId).toBe(gwA.connectorId);
      const commands = expectStatus(
        await api.get(`/api/v1/commands?q=${marker}`, admin.token),
        200,
        'commands',
      ).body.commands as { kind: string; command: string; sessionId: string }[];
      const kinds = commands.map((c) => c.kind).sort();
      expect(kinds).toEqual(expect.arrayContaining(['exec', 'shell']));
      expect(commands.find((c) => c.kind === 'shell')?.command).toBe(`echo shell-${marker}`);
      const recording = await api.get(`/api/v1/sessions/${shellSession}/recording`, admin.token);
      expect(recording.status).toBe(200);
      expect(String(recording.body)).toContain(`shell-${marker}`);
      const verified = await api.get(
        `/api/v1/sessions/${shellSession}/recording/verify`,
        admin.token,
      );
      expect(verified.body).toMatchObject({ ok: true });
      const transfers = expectStatus(
        await api.get('/api/v1/audit?type=session.file_transfer', admin.token),
        200,
        'file transfers',
      ).body.events as { data: { path: string; sha256Written?: string; sha256Read?: string } }[];
      const sha = createHash('sha256').update(content).digest('hex');
      expect(transfers.some((e) => e.data.path === remote && e.data.sha256Written === sha)).toBe(
        true,
      );
      expect(transfers.some((e) => e.data.path === remote && e.data.sha256Read === sha)).toBe(true);
      const forwardCommands = expectStatus(
        await api.get(
          `/api/v1/commands?q=${encodeURIComponent(`forward ${asset.name}:${echoPort}`)}`,
          admin.token,
        ),
        200,
        'forward commands',
      ).body.commands as unknown[];
      expect(forwardCommands.length).toBeGreaterThan(0);

      const metrics = String((await api.get('/metrics')).body);
      const opened = /^airlock_connector_streams_total\{outcome="opened"\} (\d+)$/m.exec(metrics);
      expect(Number(opened?.[1])).toBeGreaterThanOrEqual(sessions.length);

      // The connector's own record of the streams it carried, with the grant and session.
      const carried = connectorAudit(gwA).filter((l) => l.event === 'stream.opened');
      for (const s of sessions) expect(carried.some((l) => l.sessionId === s.id)).toBe(true);
    },
    LONG,
  );

  it(
    'records a session through the connector exactly as the same session on the direct path',
    async () => {
      // The same sshd, registered a second time in a zone without connectors: dialled directly.
      direct = await createSshAsset(api, admin, approver, sshd!, 'ews-direct-01');
      await grantAccess(api, vera, approver, direct);
      const marker = randomBytes(4).toString('hex');
      const command = `printf 'line-%s\\n' ${marker} one two three; echo done`;
      const run = async (assetName: string) => {
        const before = new Set((await sessionsOfVera()).map((x) => x.id));
        const result = await runSsh(
          [...sshArgs(gatewayTarget(broker!.sshAddress, vera, assetName)), command],
          { timeoutMs: 30_000 },
        );
        expect(result.code, result.stderr).toBe(0);
        const id = (await sessionsOfVera()).map((x) => x.id).find((x) => !before.has(x))!;
        await endedSession(api, admin, id);
        return { id, stdout: result.stdout };
      };
      const viaConnector = await run(asset.name);
      const viaDirect = await run(direct.name);
      expect(viaConnector.stdout).toBe(viaDirect.stdout);
      expect((await session(viaConnector.id)).connectorId).toBe(
        connectors.get('gw-a')!.connectorId,
      );
      expect((await session(viaDirect.id)).connectorId).toBeNull();

      /**
       * What was recorded, without the times, and with consecutive events of one
       * kind joined (how the asset's output is cut into packets varies on any path).
       */
      const recorded = async (id: string) => {
        const cast = await api.get(`/api/v1/sessions/${id}/recording`, admin.token);
        expect(cast.status).toBe(200);
        const events: [string, string][] = [];
        for (const line of String(cast.body).trim().split('\n').slice(1)) {
          const [, kind, data] = JSON.parse(line) as [number, string, string];
          const last = events.at(-1);
          if (last !== undefined && last[0] === kind) last[1] += data;
          else events.push([kind, data]);
        }
        return events;
      };
      const castConnector = await recorded(viaConnector.id);
      expect(castConnector.map(([, data]) => data).join('')).toContain(`line-${marker}`);
      expect(castConnector).toEqual(await recorded(viaDirect.id));
      const commandsOf = async (id: string) =>
        (
          expectStatus(
            await api.get(`/api/v1/sessions/${id}/commands`, admin.token),
            200,
            'commands',
          ).body.commands as { kind: string; command: string; outcome: string }[]
        ).map((c) => [c.kind, c.command, c.outcome]);
      expect(await commandsOf(viaConnector.id)).toEqual([['exec', command, 'forwarded']]);
      expect(await commandsOf(viaConnector.id)).toEqual(await commandsOf(viaDirect.id));
    },
    LONG,
  );

  it(
    'keeps keystroke echo responsive while another session pulls a bulk transfer through the same connector',
    async () => {
      const { term } = await openShell();
      const measure = async (count: number): Promise<number[]> => {
        const samples: number[] = [];
        for (let i = 0; i < count; i += 1) {
          const char = String.fromCharCode(97 + (i % 26));
          const t0 = process.hrtime.bigint();
          term.write(char);
          await term.waitFor(char, 10_000);
          samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (i % 50 === 49) {
            term.write('\u0015'); // Ctrl-U: clear the line, keep it short
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
        term.write('\u0015');
        return samples;
      };
      const idle = await measure(100);

      // The bulk transfer: an endless stream from the asset, through the same connector.
      let bulkBytes = 0;
      const bulk = spawnSsh([...sshArgs(target()), 'cat /dev/zero']);
      bulk.child.stdout!.removeAllListeners('data');
      bulk.child.stdout!.on('data', (chunk: Buffer) => (bulkBytes += chunk.length));
      await eventually('the bulk transfer to flow', () =>
        Promise.resolve(bulkBytes > 8 * 1024 * 1024 ? true : undefined),
      );
      const bytesBefore = bulkBytes;
      const loaded = await measure(200);
      const bytesDuring = bulkBytes - bytesBefore;
      const bulkStillRunning = bulk.child.exitCode === null;
      await bulk.stop();
      term.write('exit\r');
      await exitOf(term);

      const report = {
        idle: { p50: percentile(idle, 0.5), p99: percentile(idle, 0.99) },
        duringBulk: { p50: percentile(loaded, 0.5), p99: percentile(loaded, 0.99) },
        bulkMiBDuringSamples: Math.round(bytesDuring / 1024 / 1024),
      };
      console.log(`echo latency through broker+connector (ms): ${JSON.stringify(report)}`);
      // Every keystroke echoed while the bulk stream was still flowing (no head-of-line blocking).
      expect(bulkStillRunning).toBe(true);
      expect(loaded).toHaveLength(200);
      expect(bytesDuring).toBeGreaterThan(1024 * 1024);
    },
    LONG,
  );

  it(
    "shares sessions between the zone's connectors; SIGKILL of one ends its session connector_lost within two heartbeats while the other's session lives on and serves new ones; the killed one reconnects by itself when restarted",
    async () => {
      const gwB = await startConnector('gw-b', { enroll: true });
      await eventually('both connectors online', async () => {
        const list = await connectorList();
        return list.filter((c) => c.status === 'online').length === 2 ? true : undefined;
      });
      // Two sessions at once: the zone's two connectors share them.
      const { term, sessionId } = await openShell();
      const { term: bystander, sessionId: bystanderSession } = await openShell();
      const carrier = (await session(sessionId)).connectorId as string;
      const otherCarrier = (await session(bystanderSession)).connectorId as string;
      expect(new Set([carrier, otherCarrier])).toEqual(
        new Set([...connectors.values()].map((c) => c.connectorId)),
      );
      const [carrierName, carrierProcess] = [...connectors].find(
        ([, c]) => c.connectorId === carrier,
      )!;
      const killedAt = Date.now();
      carrierProcess.signal('SIGKILL');
      await carrierProcess.exited;
      const ended = await endedSession(api, admin, sessionId);
      expect(ended.endReason).toBe('connector_lost');
      expect(new Date(ended.endedAt).getTime() - killedAt).toBeLessThan(
        2 * HEARTBEAT_MS + SLACK_MS,
      );
      await term.waitFor('The connection to the zone was lost', 10_000);
      await exitOf(term);
      // The session on the other connector is untouched.
      bystander.write('echo still-here\r');
      await bystander.waitFor(/[\r\n]still-here\r\n/);
      expect((await session(bystanderSession)).live).toBe(true);
      bystander.write('exit\r');
      await exitOf(bystander);

      // A new session meanwhile goes through the connector that is left.
      const other = [...connectors.values()].find((c) => c.connectorId !== carrier)!;
      const marker = randomBytes(4).toString('hex');
      const exec = await runSsh([...sshArgs(target()), `echo again-${marker}`], {
        timeoutMs: 30_000,
      });
      expect(exec.stdout).toContain(`again-${marker}`);
      const latest = (await sessionsOfVera())[0]!;
      expect(latest.connectorId).toBe(other.connectorId);

      const lost = expectStatus(
        await api.get(
          `/api/v1/audit?type=connector.disconnected&subjectId=${carrier}`,
          admin.token,
        ),
        200,
        'audit',
      ).body.events as unknown[];
      expect(lost.length).toBeGreaterThan(0);
      await eventually('the killed connector shown offline', async () =>
        (await connectorList()).find((c) => c.id === carrier && c.status === 'offline'),
      );

      // Restarted with its data dir and no token, it reconnects by itself.
      const restarted = await startConnector(carrierName, { enroll: false });
      expect(restarted.connectorId).toBe(carrier);
      await eventually('the restarted connector online', async () =>
        (await connectorList()).find((c) => c.id === carrier && c.status === 'online'),
      );
      expect(gwB.connectorId).not.toBe('');
    },
    LONG,
  );

  it(
    'declares a silent connector (SIGSTOP) lost within two heartbeats, ending its session connector_lost; it reconnects by itself once it runs again',
    async () => {
      const { term, sessionId } = await openShell();
      const carrier = (await session(sessionId)).connectorId as string;
      const frozen = [...connectors.values()].find((c) => c.connectorId === carrier)!;
      const from = frozen.stdout().length;
      const stoppedAt = Date.now();
      frozen.signal('SIGSTOP');
      try {
        const ended = await endedSession(api, admin, sessionId);
        expect(ended.endReason).toBe('connector_lost');
        expect(ended.endDetail).toContain('heartbeats');
        expect(new Date(ended.endedAt).getTime() - stoppedAt).toBeLessThan(
          2 * HEARTBEAT_MS + SLACK_MS,
        );
      } finally {
        frozen.signal('SIGCONT');
      }
      await exitOf(term);
      await frozen.waitForOutput(/airlock-connector linked /, 30_000, from);
      await eventually('the thawed connector online', async () =>
        (await connectorList()).find((c) => c.id === carrier && c.status === 'online'),
      );
    },
    LONG,
  );

  it(
    'reaches the zone only through its connectors: with every connector stopped, no session reaches the asset',
    async () => {
      for (const connector of connectors.values()) await connector.stop();
      await eventually('all connectors offline', async () =>
        (await connectorList()).every((c) => c.status === 'offline') ? true : undefined,
      );
      const exec = await runSsh([...sshArgs(target()), 'echo should-not-run'], {
        timeoutMs: 30_000,
      });
      expect(exec.stdout).not.toContain('should-not-run');
      expect(exec.code).not.toBe(0);
      const refused = (await sessionsOfVera())[0]!;
      const ended = await endedSession(api, admin, refused.id);
      expect(ended).toMatchObject({ endReason: 'asset_unreachable' });
      expect(ended.endDetail).toContain('no connector of the zone');
      const live = await api.get(`/api/v1/sessions?live=true&userId=${vera.id}`, admin.token);
      expect(live.body.sessions).toHaveLength(0);

      // Registering a connector for the direct zone, even before it enrols, ends direct dialling.
      const before = await runSsh(
        [...sshArgs(gatewayTarget(broker!.sshAddress, vera, direct.name)), 'echo direct-ok'],
        { timeoutMs: 30_000 },
      );
      expect(before.stdout).toContain('direct-ok');
      expectStatus(
        await api.post(
          '/api/v1/connectors',
          { name: 'gw-new', zoneId: direct.zoneId },
          admin.token,
        ),
        201,
        'register a connector',
      );
      const after = await runSsh(
        [...sshArgs(gatewayTarget(broker!.sshAddress, vera, direct.name)), 'echo direct-ok'],
        { timeoutMs: 30_000 },
      );
      expect(after.stdout).not.toContain('direct-ok');
      const refusedDirect = await endedSession(api, admin, (await sessionsOfVera())[0]!.id);
      expect(refusedDirect.endDetail).toContain('no connector of the zone');
    },
    LONG,
  );
});
