/**
 * The SSH gateway from the outside: the real broker process (`pnpm start`)
 * on a fresh database of the suite's PostgreSQL, the real OpenSSH client in a
 * real terminal, and a real sshd as the OT asset. What the vendor sees is read
 * from the terminal; what the system recorded, from the HTTP API and the
 * operator's CLI; what ran on the asset, from the asset's own shell logs.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { totpCode } from '@airlock/crypto';
import {
  createEmptyDatabase,
  interactiveSsh,
  runProgram,
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
import {
  killBroker,
  printedJson,
  runCli,
  spawnBroker,
  type BrokerProcess,
} from './support/broker.js';
import { apiClient, type ApiClient } from './support/http.js';

const LONG = 120_000;
/** The machine running the suite is shared and loaded: slack on top of every deadline. */
const SLACK_MS = 2_000;
const PROMPT = 'asset$ ';

/** Processes of a process group that still run (not zombies), from /proc. */
function runningInGroup(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the parenthesised command name: state, ppid, pgrp, …
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') found.push(Number(entry));
    } catch {
      // gone while we looked
    }
  }
  return found;
}

describe('ssh gateway, end to end with the real broker process', () => {
  let dataDir = '';
  let database: { url: string; drop(): Promise<void> } | null = null;
  let sshd: SshdFixture | null = null;
  let broker: BrokerProcess | null = null;
  let api: ApiClient;
  let env: Record<string, string>;
  let admin: SignedIn;
  let approver: SignedIn;
  let vera: Vendor; // a vendor with a two-hour grant
  let tom: Vendor | null = null; // a vendor with TOTP enrolled
  let asset: SshAsset;
  const terminals: InteractiveSsh[] = [];

  const start = async (): Promise<BrokerProcess> => {
    broker = await spawnBroker({ dataDir, env });
    api = apiClient(broker.httpUrl);
    return broker;
  };

  /** An interactive `ssh -tt vendor+asset@broker` in a real pty, closed after the file. */
  const openTerminal = (vendor: Vendor, options: { batchMode?: boolean } = {}): InteractiveSsh => {
    const term = interactiveSsh(
      sshArgs(gatewayTarget(broker!.sshAddress, vendor, asset.name, options)),
      { cols: 100, rows: 30 },
    );
    terminals.push(term);
    return term;
  };

  /** Types a command and waits for its output line and the next prompt, as a person would. */
  const run = async (term: InteractiveSsh, command: string, output: string): Promise<void> => {
    term.write(`${command}\r`);
    await term.waitFor(new RegExp(`[\\r\\n]${output}\\r\\n`));
    await term.waitFor(PROMPT);
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'airlock-e2e-ssh-'));
    database = await createEmptyDatabase();
    env = {
      DATABASE_URL: database.url,
      AIRLOCK_ADMIN_PASSWORD: randomPassword(),
      AIRLOCK_MASTER_KEY: randomBytes(32).toString('base64'),
      // A replica silent for 3 s counts as crashed, so the crash test need not wait 30 s.
      AIRLOCK_INSTANCE_STALE_SECONDS: '3',
    };
    sshd = await startSshd();
    await start();
    admin = await signIn(api, 'admin', env.AIRLOCK_ADMIN_PASSWORD!);
    approver = await createUser(api, admin, { username: 'alice', roles: ['approver'] });
    asset = await createSshAsset(api, admin, approver, sshd, 'hmi-01');
    vera = await createVendor(api, admin, join(dataDir, 'keys'), 'vera');
    await grantAccess(api, vera, approver, asset);
  }, LONG);

  afterAll(async () => {
    for (const term of terminals) await term.close().catch(() => undefined);
    await killBroker(broker);
    await sshd?.stop();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  it(
    'asks a vendor with TOTP for the one-time code after the key: the right code opens a shell, a wrong one is refused and audited',
    async () => {
      const totpVendor = await createVendor(api, admin, join(dataDir, 'keys'), 'tom', {
        totp: true,
      });
      tom = totpVendor;
      await grantAccess(api, totpVendor, approver, asset);
      const marker = randomBytes(4).toString('hex');

      const term = openTerminal(totpVendor, { batchMode: false });
      await term.waitFor('Airlock one-time code: ', 20_000);
      // The enrolment used the current step; the next one is still inside the accepted window.
      term.write(`${totpCode(totpVendor.totpSecret!, Date.now() + 30_000)}\r`);
      await term.waitFor(PROMPT, 20_000);
      await run(term, `echo totp-ok-${marker}`, `totp-ok-${marker}`);
      term.write('exit\r');
      expect((await exitOf(term)).exitCode).toBe(0);
      expect(await sshd!.historyLog()).toContain(`echo totp-ok-${marker}`);

      const now = Date.now();
      const valid = new Set(
        [-30_000, 0, 30_000].map((d) => totpCode(totpVendor.totpSecret!, now + d)),
      );
      let wrong = '000000';
      for (let n = 1; valid.has(wrong); n += 1) wrong = String(n).padStart(6, '0');
      const refused = openTerminal(totpVendor, { batchMode: false });
      await refused.waitFor('Airlock one-time code: ', 20_000);
      refused.write(`${wrong}\r`);
      // Refused: no shell. OpenSSH offers its key again, so the gateway asks again (each
      // wrong code counts towards the lockout); the vendor gives up.
      await refused.waitFor('Airlock one-time code: ', 20_000);
      expect(stripAnsi(refused.output())).not.toContain(PROMPT);
      await refused.close();
      const sessions = await api.get(`/api/v1/sessions?userId=${totpVendor.id}`, admin.token);
      expect(sessions.body.sessions).toHaveLength(1);

      const audit = await api.get('/api/v1/audit?type=session.refused&order=desc', admin.token);
      expect(audit.status).toBe(200);
      const reasons = (audit.body.events as { data: { login: string; reason: string } }[])
        .filter((e) => e.data.login.split('+')[0] === 'tom')
        .map((e) => e.data.reason);
      expect(reasons).toEqual(['bad_totp']);
    },
    LONG,
  );

  it(
    'warns the vendor as the window nears its end, then ends the session at notAfter',
    async () => {
      const eve = await createVendor(api, admin, join(dataDir, 'keys'), 'eve');
      const { notAfter } = await grantAccess(api, eve, approver, asset, {
        notAfter: new Date(Date.now() + 25_000),
      });
      const term = openTerminal(eve);
      await term.waitFor(PROMPT, 20_000);
      // Under five minutes from the start: the warning comes at once, with the real time left —
      // as soon as the shell channel is open, so before or after the asset's prompt.
      const warning = new RegExp(
        `Access to ${asset.name} ends in \\d+ seconds \\(at ${notAfter.toISOString()}\\)`,
      );
      await eventually(
        'the expiry warning in the vendor’s terminal',
        () => Promise.resolve(warning.test(term.output()) ? true : undefined),
        5_000,
      );
      const sessionId = await liveSessionOf(api, approver, eve);
      await run(term, 'echo still-working', 'still-working');

      await term.waitFor('access window has ended', notAfter.getTime() - Date.now() + 10_000);
      const seenLagMs = Date.now() - notAfter.getTime();
      await exitOf(term);
      const ended = await endedSession(api, approver, sessionId);
      const recordedLagMs = new Date(ended.endedAt).getTime() - notAfter.getTime();
      console.info(
        `expiry: notice seen ${seenLagMs} ms after notAfter, end recorded ${recordedLagMs} ms after`,
      );
      expect(ended.endReason).toBe('expired');
      // Both thresholds (5 and 1 min) passed at the start: one warning, not two.
      expect(stripAnsi(term.output()).match(/Access to \S+ ends in/g)).toHaveLength(1);
      expect(recordedLagMs).toBeGreaterThanOrEqual(0);
      expect(recordedLagMs).toBeLessThan(1_000 + SLACK_MS);
      expect(seenLagMs).toBeLessThan(1_000 + SLACK_MS);
    },
    LONG,
  );

  it(
    'ends a live session within a second of an approver terminating it, showing the reason',
    async () => {
      const term = openTerminal(vera);
      await term.waitFor(PROMPT, 20_000);
      const sessionId = await liveSessionOf(api, approver, vera);
      const reason = `pump P-101 tripped ${randomBytes(3).toString('hex')}`;
      const started = Date.now();
      const res = await api.post(
        `/api/v1/sessions/${sessionId}/terminate`,
        { reason },
        approver.token,
      );
      expect(res.status).toBe(202);
      await term.waitFor(`This session was terminated by an approver: ${reason}`, 1_000 + SLACK_MS);
      const seenMs = Date.now() - started;
      await exitOf(term);
      const exitedMs = Date.now() - started;
      console.info(`terminate: notice seen after ${seenMs} ms, ssh exited after ${exitedMs} ms`);
      expect(exitedMs).toBeLessThan(1_000 + SLACK_MS);
      const ended = await endedSession(api, approver, sessionId);
      expect(ended).toMatchObject({ endReason: 'terminated', endDetail: reason });
    },
    LONG,
  );

  it(
    'records what the vendor saw: the recording replays with asciinema, and the audit trail verifies',
    async () => {
      const marker = `rec-${randomBytes(4).toString('hex')}`;
      const term = openTerminal(vera);
      await term.waitFor(PROMPT, 20_000);
      const sessionId = await liveSessionOf(api, approver, vera);
      await run(term, `echo ${marker}`, marker);
      term.write('exit\r');
      expect((await exitOf(term)).exitCode).toBe(0);
      expect((await endedSession(api, approver, sessionId)).endReason).toBe('client_exit');

      const cast = await api.get(`/api/v1/sessions/${sessionId}/recording`, admin.token);
      expect(cast.status).toBe(200);
      expect(cast.headers.get('content-type')).toContain('application/x-asciicast');
      const file = join(dataDir, `${sessionId}.cast`);
      await writeFile(file, String(cast.body));
      // asciinema opens /dev/tty even for `cat`: give it a terminal with script(1).
      const replay = await runProgram(
        '/usr/bin/script',
        ['-qec', `asciinema cat ${file}`, '/dev/null'],
        {
          timeoutMs: 30_000,
        },
      );
      expect(replay.code, replay.stderr).toBe(0);
      const replayed = stripAnsi(replay.stdout);
      expect(replayed).toMatch(new RegExp(`[\\r\\n]${marker}\\r?\\n`));
      expect(replayed).toContain(`echo ${marker}`);

      const verify = await runCli(['audit', 'verify'], {
        dataDir,
        env: { DATABASE_URL: env.DATABASE_URL, AIRLOCK_MASTER_KEY: env.AIRLOCK_MASTER_KEY },
      });
      expect(verify.code, verify.stderr).toBe(0);
      expect(printedJson(verify.stdout)).toMatchObject({ ok: true });
    },
    LONG,
  );

  it(
    'tells live sessions when the broker stops, exits 0, and after a crash the restarted broker closes the orphaned session',
    async () => {
      // An orderly stop (SIGTERM, as systemd or Kubernetes sends it).
      const term = openTerminal(vera);
      await term.waitFor(PROMPT, 20_000);
      const stoppedSession = await liveSessionOf(api, approver, vera);
      // Nor may a connection still at the one-time code prompt hold the stop up.
      expect(tom, 'the TOTP test did not run').not.toBeNull();
      const atPrompt = openTerminal(tom!, { batchMode: false });
      await atPrompt.waitFor('Airlock one-time code: ', 20_000);
      const exit = await broker!.stop({ signal: 'SIGTERM', timeoutMs: 30_000 });
      expect(exit, broker!.stderr()).toEqual({ code: 0, signal: null });
      await term.waitFor('The Airlock broker is shutting down; the session is closed.', 5_000);
      await exitOf(term);
      // ssh blocks reading the code from the terminal; once answered it finds the connection gone.
      atPrompt.write('000000\r');
      expect((await exitOf(atPrompt)).exitCode).toBe(255);

      await start();
      expect(await endedSession(api, approver, stoppedSession)).toMatchObject({
        endReason: 'broker_shutdown',
      });

      // A crash: SIGKILL to the whole process group (pnpm, tsx, the broker), mid-session.
      const crashTerm = openTerminal(vera);
      await crashTerm.waitFor(PROMPT, 20_000);
      const orphan = await liveSessionOf(api, approver, vera);
      const crashed = broker!;
      await crashed.kill();
      expect((await crashed.exited).signal).toBe('SIGKILL');
      // Nothing of it runs on (a killed process may linger a moment as a zombie).
      await eventually('every process of the killed broker to be gone', () =>
        Promise.resolve(runningInGroup(crashed.pid).length === 0 ? true : undefined),
      );
      await exitOf(crashTerm);

      const restartedAt = Date.now();
      await start();
      const ended = await endedSession(api, approver, orphan, 30_000);
      console.info(`crash: orphan closed ${Date.now() - restartedAt} ms after the restart began`);
      expect(ended.endReason).toBe('broker_shutdown');
      const events = await eventually('the orphan’s session.end event', async () => {
        const res = await api.get(
          `/api/v1/audit?type=session.end&subjectId=${orphan}`,
          admin.token,
        );
        const found = res.body.events as { data: { reason: string; detail: string } }[];
        return found.length > 0 ? found : undefined;
      });
      expect(events).toHaveLength(1);
      expect(events[0]!.data).toMatchObject({ reason: 'broker_shutdown' });
    },
    LONG,
  );
});
