/**
 * Fail closed (DESIGN invariant 3), from the outside. The broker runs on its
 * embedded PostgreSQL so that the test can take the audit store away under a
 * live session, as a crash of the database would: the vendor is warned, the
 * command typed after the failure never reaches the asset (the asset's own
 * shell logs say so), the session ends within the announced grace period, and
 * no new session starts. The operator then restarts the broker, which brings
 * PostgreSQL back.
 *
 * What the record must say: the session ended because the audit store failed,
 * so its end reason is `audit_failure` — even though the broker was restarted
 * before the store came back. The broker keeps end records it could not write
 * on disk (`<data dir>/pending-session-ends`) and writes them at its next start,
 * before it sweeps up sessions of stopped replicas; the sweep's
 * `broker_shutdown` is for sessions whose end nobody saw (a crash of the broker
 * itself), and would misstate this one.
 */
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  interactiveSsh,
  runSsh,
  sshArgs,
  startSshd,
  stripAnsi,
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
  exitOf,
  gatewayTarget,
  grantAccess,
  liveSessionOf,
  randomPassword,
  signIn,
  type SignedIn,
  type SshAsset,
  type Vendor,
} from './support/airlock.js';
import { killBroker, spawnBroker, type BrokerProcess } from './support/broker.js';
import { apiClient, type ApiClient } from './support/http.js';

const LONG = 150_000;
const SLACK_MS = 3_000;
const PROMPT = 'asset$ ';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('when the audit store fails, the broker fails closed', () => {
  let dataDir = '';
  let sshd: SshdFixture | null = null;
  let broker: BrokerProcess | null = null;
  let api: ApiClient;
  let admin: SignedIn;
  let approver: SignedIn;
  let vendor: Vendor;
  let asset: SshAsset;
  let term: InteractiveSsh | null = null;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'airlock-e2e-audit-failure-'));
    sshd = await startSshd();
    const adminPassword = randomPassword();
    // No DATABASE_URL: the broker starts its embedded PostgreSQL under the data dir.
    broker = await spawnBroker({ dataDir, env: { AIRLOCK_ADMIN_PASSWORD: adminPassword } });
    api = apiClient(broker.httpUrl);
    admin = await signIn(api, 'admin', adminPassword);
    approver = await createUser(api, admin, { username: 'alice', roles: ['approver'] });
    asset = await createSshAsset(api, admin, approver, sshd, 'plc-gw-01');
    vendor = await createVendor(api, admin, join(dataDir, 'keys'), 'vera');
    await grantAccess(api, vendor, approver, asset);
  }, LONG);

  afterAll(async () => {
    await term?.close().catch(() => undefined);
    await killBroker(broker);
    await sshd?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  it(
    'forwards nothing once the store is gone, warns, ends the session within the grace period, refuses new ones, and records audit_failure once the store is back',
    async () => {
      const marker = randomBytes(4).toString('hex');
      const target = gatewayTarget(broker!.sshAddress, vendor, asset.name);
      term = interactiveSsh(sshArgs(target), { cols: 100, rows: 30 });
      await term.waitFor(PROMPT, 20_000);
      term.write(`echo alive-${marker}\r`);
      await term.waitFor(new RegExp(`[\\r\\n]alive-${marker}\\r\\n`));
      await term.waitFor(PROMPT);
      const sessionId = await liveSessionOf(api, approver, vendor);
      // What the vendor saw so far has reached the store (bounded lag: one flush interval).
      await eventually(
        'the recording to reach the store',
        async () => {
          const cast = await api.get(`/api/v1/sessions/${sessionId}/recording`, admin.token);
          return String(cast.body).includes(`alive-${marker}`) ? true : undefined;
        },
        5_000,
      );

      // PostgreSQL goes away: fast shutdown (SIGINT) of the postmaster, as `pg_ctl stop -m fast`.
      const pidFile = join(dataDir, 'postgres', 'postmaster.pid');
      const postmaster = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
      expect(postmaster).toBeGreaterThan(1);
      process.kill(postmaster, 'SIGINT');
      await eventually(
        'PostgreSQL to stop',
        () => Promise.resolve(isAlive(postmaster) ? undefined : true),
        30_000,
      );

      const typedAt = Date.now();
      term.write(`echo after-${marker}\r`);
      const warned = await term.waitFor(
        /The audit store is unavailable\. Nothing more is forwarded; this session ends in (\d+) seconds\./,
        5_000,
      );
      const graceSeconds = Number(
        /this session ends in (\d+) seconds/.exec(
          warned.slice(warned.lastIndexOf('The audit store')),
        )?.[1],
      );
      expect(graceSeconds).toBeGreaterThan(0);
      await term.waitFor('the session is closed for safety', graceSeconds * 1000 + SLACK_MS);
      const exit = await exitOf(term);
      const endedAfterMs = Date.now() - typedAt;
      console.info(
        `audit failure: ssh exited ${endedAfterMs} ms after the command was typed (grace ${graceSeconds} s)`,
      );
      expect(exit.exitCode).not.toBe(0);
      expect(endedAfterMs).toBeLessThan(graceSeconds * 1000 + SLACK_MS);
      // The command never ran: no output in the terminal, nothing in the asset's shell.
      expect(stripAnsi(term.output())).not.toMatch(new RegExp(`[\\r\\n]after-${marker}\\r?\\n`));
      const history = await sshd!.historyLog();
      expect(history).toContain(`echo alive-${marker}`);
      expect(history.filter((line) => line.includes(`after-${marker}`))).toEqual([]);
      expect((await sshd!.commandLog()).filter((line) => line.includes(`after-${marker}`))).toEqual(
        [],
      );

      // No new session while the store is down.
      const refused = await runSsh([...sshArgs(target), `echo new-${marker}`], {
        timeoutMs: 30_000,
      });
      expect(refused.code).toBe(255);
      expect(refused.stderr).toMatch(/Permission denied/);
      expect((await sshd!.execLog()).filter((line) => line.includes(`new-${marker}`))).toEqual([]);

      // The operator restarts the broker; its embedded PostgreSQL comes back with it.
      const stopped = await broker!.stop({ signal: 'SIGTERM', timeoutMs: 30_000 });
      expect(stopped, broker!.stderr()).toEqual({ code: 0, signal: null });
      broker = await spawnBroker({ dataDir });
      api = apiClient(broker.httpUrl);

      const ended = await endedSession(api, approver, sessionId);
      expect(ended.endReason).toBe('audit_failure');
      // The part of the recording that reached the store before it failed is
      // sealed in the session's record and verifies.
      expect(ended.recordingChunks).toBeGreaterThan(0);
      const recording = await api.get(
        `/api/v1/sessions/${sessionId}/recording/verify`,
        admin.token,
      );
      expect(recording.body).toMatchObject({ ok: true });
      const ends = await api.get(
        `/api/v1/audit?type=session.end&subjectId=${sessionId}`,
        admin.token,
      );
      expect(ends.body.events).toHaveLength(1);
      expect(ends.body.events[0].data).toMatchObject({ reason: 'audit_failure' });
      const commands = await api.get(`/api/v1/sessions/${sessionId}/commands`, admin.token);
      expect((commands.body.commands as { command: string }[]).map((c) => c.command)).toEqual([
        `echo alive-${marker}`,
      ]);
      const verify = await api.get('/api/v1/audit/verify', admin.token);
      expect(verify.body).toMatchObject({ ok: true });
    },
    LONG,
  );
});
