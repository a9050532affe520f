/**
 * The SSH gateway with the real OpenSSH client, in-process broker (real
 * PostgreSQL) and a real sshd as the asset. What the asset actually ran is
 * read from the asset's own shell (DEBUG trap and history): the ground truth
 * that recorded commands are compared with.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  generateClientKey,
  interactiveSsh,
  runScp,
  runSsh,
  scpArgs,
  SSH_BIN,
  sshArgs,
  startSshd,
  stripAnsi,
  type ClientKey,
  type SshdFixture,
  type SshTarget,
} from '@airlock/test-support';
import { pgChunkSink, verifySessionRecording, type ChunkSink } from '@airlock/recording';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestBroker, type TestBroker, type TestUser } from '../testing/harness.js';
import { startSshGateway, type SshGateway } from './server.js';

describe('ssh gateway', () => {
  let t: TestBroker;
  let sshd: SshdFixture;
  let gateway: SshGateway;
  let vendor: TestUser;
  let approver: TestUser;
  let key: ClientKey;
  let otherKey: ClientKey;
  let dir: string;
  let echo: Server;
  let echoPort: number;
  let assetId: string;
  let zoneId: string;
  let grantId: string;

  const target = (
    login: string,
    identityFile = key.privateKeyPath,
    extra: string[] = [],
  ): SshTarget => ({
    host: '127.0.0.1',
    port: Number(gateway.address.split(':').at(-1)),
    user: login,
    identityFile,
    extra,
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-gw-'));
    echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as { port: number }).port;
    sshd = await startSshd();
    t = await createTestBroker({ start: new Date() });
    gateway = await startSshGateway(t.ctx, {
      host: '127.0.0.1',
      port: 0,
      auditFailureGraceMs: 500,
      superviseEveryMs: 100,
      terminalRestAfterMs: 300,
    });

    vendor = await t.user('vera', ['vendor'], { organization: 'Nordwerk' });
    approver = await t.user('alice', ['approver']);
    key = await generateClientKey(dir, { name: 'vera' });
    otherKey = await generateClientKey(dir, { name: 'mallory' });
    expect(
      (
        await t.call('POST', '/api/v1/me/ssh-keys', {
          token: vendor.token,
          body: { publicKey: key.publicKey },
        })
      ).status,
    ).toBe(201);

    const zone = await t.call('POST', '/api/v1/zones', {
      token: t.admin.token,
      body: {
        name: 'Plant A',
        policy: {
          requiredApprovals: 1,
          allowedCapabilities: ['shell', 'exec', 'sftp', 'forward'],
          commandRules: [
            { pattern: '^\\s*(sudo\\s+)?reboot\\b', action: 'block', description: 'no restarts' },
          ],
        },
      },
    });
    zoneId = zone.body.id;
    await t.call('PUT', `/api/v1/zones/${zoneId}/approvers`, {
      token: t.admin.token,
      body: { userIds: [approver.id] },
    });
    const asset = await t.call('POST', '/api/v1/assets', {
      token: t.admin.token,
      body: {
        name: 'hmi-01',
        zoneId,
        host: '127.0.0.1',
        port: sshd.port,
        protocol: 'ssh',
        login: sshd.user.name,
        credential: sshd.user.password,
        hostKey: sshd.hostPublicKey,
        forwardPorts: [echoPort],
      },
    });
    expect(asset.status).toBe(201);
    assetId = asset.body.id;
    const filed = await t.call('POST', '/api/v1/requests', {
      token: vendor.token,
      body: {
        assetIds: [assetId],
        durationMinutes: 120,
        reason: 'Maintenance',
        capabilities: ['shell', 'exec', 'sftp', 'forward'],
      },
    });
    const approved = await t.call('POST', `/api/v1/requests/${filed.body.id}/approve`, {
      token: approver.token,
      body: {},
    });
    grantId = approved.body.grantIds[0];
  }, 120_000);

  afterAll(async () => {
    await gateway?.close();
    await t?.close();
    await sshd?.stop();
    await new Promise((resolve) => echo?.close(resolve));
  });

  it('runs an exec command on the asset with its exit status, recorded before it ran', async () => {
    const ok = await runSsh([...sshArgs(target('vera+hmi-01')), 'echo hello-from-asset; exit 7']);
    expect(ok.stdout).toContain('hello-from-asset');
    expect(ok.code).toBe(7);
    expect(await sshd.execLog()).toContain('echo hello-from-asset; exit 7');
    const commands = await t.call('GET', '/api/v1/commands?q=hello-from-asset', {
      token: t.admin.token,
    });
    expect(commands.body.commands).toHaveLength(1);
    expect(commands.body.commands[0]).toMatchObject({
      kind: 'exec',
      outcome: 'forwarded',
      asset: { name: 'hmi-01' },
    });
  });

  /**
   * Runs ssh and reads nothing of its output for 1.5 s: by then the asset is
   * done, and the gateway still holds what the vendor's SSH window has not
   * taken when the asset's side closes. Then reads everything.
   */
  const readSlowly = async (
    args: string[],
    input?: Buffer,
    meanwhile: (stdin: NodeJS.WritableStream) => Promise<void> = () => Promise.resolve(),
  ): Promise<{ code: number | null; out: number; err: number }> => {
    const ssh = spawn(SSH_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => ssh.once('close', resolve));
    ssh.stdout.pause();
    ssh.stderr.pause();
    if (input !== undefined) ssh.stdin.write(input);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await meanwhile(ssh.stdin);
    ssh.stdin.end();
    let out = 0;
    let err = 0;
    ssh.stdout.on('data', (chunk: Buffer) => (out += chunk.length));
    ssh.stderr.on('data', (chunk: Buffer) => (err += chunk.length));
    ssh.stdout.resume();
    ssh.stderr.resume();
    return { code: await exited, out, err };
  };

  it('delivers every byte of output, stdout and stderr, to a vendor that reads slowly', async () => {
    const size = 6 * 1024 * 1024;
    const run = await readSlowly([
      ...sshArgs(target('vera+hmi-01')),
      `head -c ${size} /dev/zero; head -c ${size / 2} /dev/zero >&2; exit 5`,
    ]);
    expect(run).toEqual({ code: 5, out: size, err: size / 2 });
  }, 30_000);

  it('runs every line piped into sh, the last one without its newline too, each audited first', async () => {
    // OpenSSH sends the script and its EOF at once; each line waits for its
    // audit row, and the EOF must wait for the lines.
    const marker = randomBytes(4).toString('hex');
    const lines = Array.from({ length: 5 }, (_, i) => `echo piped-${i}-${marker}`);
    const run = await runSsh([...sshArgs(target('vera+hmi-01')), 'sh'], {
      input: lines.join('\n'),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toEqual(lines.map((l) => l.slice('echo '.length)));
    const { rows } = await t.db.pool.query(
      `select command from commands where command like $1 order by occurred_at, id`,
      [`%-${marker}`],
    );
    expect(rows.map((r: { command: string }) => r.command).sort()).toEqual([...lines].sort());
  });

  it('takes no more input once the asset’s shell has ended, while its output still drains', async () => {
    // `sh` reading lines (each a command, judged by the zone's rules) exits
    // at once; its output is still on its way to the vendor when the vendor
    // sends a line a rule blocks. The notice must not be written into the
    // ending channel (a write after end crashed the broker), and the line
    // reaches nothing, so it is not audited as a command either.
    const marker = randomBytes(4).toString('hex');
    const size = 4 * 1024 * 1024;
    const run = await readSlowly(
      [...sshArgs(target('vera+hmi-01')), 'sh'],
      Buffer.from(`head -c ${size} /dev/zero >&2; exit 3\n`),
      async (stdin) => {
        stdin.write(`reboot # ${marker}\n`);
        await new Promise((resolve) => setTimeout(resolve, 300));
      },
    );
    expect(run).toEqual({ code: 3, out: 0, err: size });
    const { rows } = await t.db.pool.query(`select 1 from commands where command like $1`, [
      `%${marker}%`,
    ]);
    expect(rows).toHaveLength(0);
  }, 30_000);

  it('holds a vendor’s upload while the asset does not read it, instead of buffering it', async () => {
    // The asset's program sleeps before reading its stdin. Held, the upload
    // stops at what the SSH windows on both sides hold; unheld, the broker
    // would take all of it into its memory meanwhile.
    const size = 48 * 1024 * 1024;
    const piece = Buffer.alloc(256 * 1024, 7);
    const ssh = spawn(
      SSH_BIN,
      [...sshArgs(target('vera+hmi-01')), 'sleep 2; head -c 100000000 | wc -c'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    ssh.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    ssh.stderr.resume();
    const exited = new Promise<number | null>((resolve) => ssh.once('close', resolve));
    let accepted = 0;
    let acceptedWhileAsleep = -1;
    const asleep = setTimeout(() => (acceptedWhileAsleep = accepted), 1_500);
    while (accepted < size) {
      accepted += piece.length;
      if (!ssh.stdin.write(piece)) await new Promise((resolve) => ssh.stdin.once('drain', resolve));
    }
    ssh.stdin.end();
    clearTimeout(asleep);
    // All of it taken before the asset woke up: the broker buffered it.
    if (acceptedWhileAsleep < 0) acceptedWhileAsleep = accepted;
    expect(await exited).toBe(0);
    expect(out.trim()).toBe(String(size));
    expect(acceptedWhileAsleep).toBeGreaterThan(0);
    expect(acceptedWhileAsleep).toBeLessThan(24 * 1024 * 1024);
  }, 30_000);

  it('delivers every byte a forwarded port sent before it closed to a vendor that reads slowly', async () => {
    const size = 4 * 1024 * 1024;
    const run = await readSlowly(
      [...sshArgs(target('vera+hmi-01', key.privateKeyPath, ['-W', `hmi-01:${echoPort}`]))],
      randomBytes(size),
    );
    expect(run).toMatchObject({ code: 0, out: size });
  }, 30_000);

  it('lists the grants for a plain login', async () => {
    const menu = await runSsh(sshArgs(target('vera')));
    expect(menu.code).toBe(0);
    expect(menu.stdout).toContain('hmi-01');
    expect(menu.stdout).toContain('vera+hmi-01@');
  });

  it('refuses wrong key, unknown asset, no grant alike, and audits each', async () => {
    const wrongKey = await runSsh([
      ...sshArgs(target('vera+hmi-01', otherKey.privateKeyPath)),
      'true',
    ]);
    const unknownAsset = await runSsh([...sshArgs(target('vera+nope-01')), 'true']);
    const outsider = await t.user('olaf', ['vendor'], { organization: 'Other' });
    const olafKey = await generateClientKey(dir, { name: 'olaf' });
    await t.call('POST', '/api/v1/me/ssh-keys', {
      token: outsider.token,
      body: { publicKey: olafKey.publicKey },
    });
    const noGrant = await runSsh([
      ...sshArgs(target('olaf+hmi-01', olafKey.privateKeyPath)),
      'true',
    ]);
    for (const refused of [wrongKey, unknownAsset, noGrant]) {
      expect(refused.code).toBe(255);
      expect(refused.stderr).toMatch(/Permission denied \(publickey\)/);
    }
    const { rows } = await t.db.pool.query<{ reason: string }>(
      `select data->>'reason' as reason from audit_events where type = 'session.refused'`,
    );
    expect(rows.map((r) => r.reason)).toEqual(
      expect.arrayContaining(['unknown_key', 'unknown_asset', 'no_active_grant']),
    );
  });

  /** An agent that holds the vendor's public key but signs with garbage, or refuses to sign. */
  function fakeAgentLogin(signature: 'garbage' | 'refuse'): Promise<'ready' | 'refused'> {
    const publicKey = ssh2.utils.parseKey(key.publicKey);
    if (publicKey instanceof Error) throw publicKey;
    class FakeAgent extends ssh2.BaseAgent {
      override getIdentities(cb: (err: Error | null, keys?: ssh2.ParsedKey[]) => void): void {
        cb(null, [publicKey as ssh2.ParsedKey]);
      }
      override sign(
        _key: unknown,
        _data: Buffer,
        options: unknown,
        cb?: (err: Error | null, sig?: Buffer) => void,
      ): void {
        const done = typeof options === 'function' ? (options as typeof cb) : cb;
        if (signature === 'refuse') done?.(new Error('agent refuses to sign'));
        else done?.(null, randomBytes(64));
      }
    }
    return new Promise((resolve) => {
      const client = new ssh2.Client();
      client.once('ready', () => {
        client.end();
        resolve('ready');
      });
      client.on('error', () => {
        client.end();
        resolve('refused');
      });
      client.connect({
        host: '127.0.0.1',
        port: Number(gateway.address.split(':').at(-1)),
        username: 'vera+hmi-01',
        agent: new FakeAgent(),
        readyTimeout: 10_000,
      });
    });
  }

  it('never authenticates a key without a valid signature, and audits both attempts', async () => {
    expect(await fakeAgentLogin('garbage')).toBe('refused');
    expect(await fakeAgentLogin('refuse')).toBe('refused');
    const reasons = async (): Promise<string[]> =>
      (
        await t.db.pool.query<{ reason: string }>(
          `select data->>'reason' as reason from audit_events where type = 'session.refused'`,
        )
      ).rows.map((r) => r.reason);
    await expect
      .poll(reasons, { timeout: 5_000 })
      .toEqual(expect.arrayContaining(['bad_signature', 'no_signature']));
  });

  it('records typed lines exactly as the asset’s shell ran them, and blocks a rule’s command', async () => {
    const marker = randomBytes(4).toString('hex');
    const term = interactiveSsh([...sshArgs(target('vera+hmi-01', key.privateKeyPath, ['-tt']))], {
      cols: 100,
      rows: 30,
    });
    try {
      // Each step waits for the command's own output, then the next prompt, as a person would.
      const run = async (keys: string, output: string): Promise<void> => {
        term.write(keys);
        await term.waitFor(new RegExp(`[\\r\\n]${output}\\r\\n`));
        await term.waitFor('asset$ ');
      };
      await term.waitFor('asset$ ');
      await run(`echo one-${marker}\r`, `one-${marker}`);
      // Quiet at the prompt: the terminal emulator is put to rest, and the
      // next lines must be read exactly as well from the redrawn screen.
      const rests = async (): Promise<number> =>
        (await t.ctx.metrics.terminalRests.get()).values[0]?.value ?? 0;
      const restsBefore = await rests();
      await vi.waitUntil(async () => (await rests()) > restsBefore, {
        timeout: 5_000,
        interval: 50,
      });
      await run(`echo twoo\x7f-${marker}\r`, `two-${marker}`); // backspace
      await run(`echo wrong\x15echo three-${marker}\r`, `three-${marker}`); // Ctrl-U
      term.write('\x1b[A'); // history recall of the previous line, then edit it
      await term.waitFor(`echo three-${marker}`);
      await run('-again\r', `three-${marker}-again`);
      term.write('reboot\r');
      await term.waitFor('Blocked by zone policy');
      term.write('\x15exit\r');
      expect(await term.exitCode).toBe(0);
    } finally {
      await term.close();
    }

    const history = await sshd.historyLog();
    const ran = history.filter((l) => l.includes(marker));
    expect(ran).toEqual([
      `echo one-${marker}`,
      `echo two-${marker}`,
      `echo three-${marker}`,
      `echo three-${marker}-again`,
    ]);
    expect(await sshd.commandLog()).not.toContain('reboot');

    const found = await t.call('GET', `/api/v1/commands?q=one-${marker}`, { token: t.admin.token });
    const sessionId: string = found.body.commands[0].sessionId;
    expect(
      (await t.call('GET', `/api/v1/sessions/${sessionId}`, { token: t.admin.token })).body
        .endReason,
    ).toBe('client_exit');
    const commands = await t.call('GET', `/api/v1/sessions/${sessionId}/commands`, {
      token: t.admin.token,
    });
    const shellLines = commands.body.commands
      .filter((c: { kind: string }) => c.kind === 'shell')
      .map((c: { command: string; outcome: string }) => `${c.outcome}:${c.command}`);
    expect(shellLines).toEqual([
      ...ran.map((l) => `forwarded:${l}`),
      'blocked:reboot',
      'forwarded:exit',
    ]);

    const cast = await t.call('GET', `/api/v1/sessions/${sessionId}/recording`, {
      token: t.admin.token,
    });
    expect(cast.status).toBe(200);
    const castText = String(cast.body);
    const [header, ...events] = castText.trim().split('\n');
    expect(JSON.parse(header!)).toMatchObject({ version: 2, width: 100, height: 30 });
    const output = events
      .map((l) => JSON.parse(l) as [number, string, string])
      .filter((e) => e[1] === 'o')
      .map((e) => e[2])
      .join('');
    expect(stripAnsi(output)).toContain(`three-${marker}-again`);
    expect(stripAnsi(output)).toContain('Blocked by zone policy');
    const verify = await t.call('GET', `/api/v1/sessions/${sessionId}/recording/verify`, {
      token: t.admin.token,
    });
    expect(verify.body.ok).toBe(true);
  });

  it('copies files with scp both ways, byte-identical, each transfer hashed in the audit trail', async () => {
    const local = join(dir, 'up.bin');
    const content = randomBytes(1024 * 1024 + 17);
    await writeFile(local, content);
    const remote = `${sshd.workDir}/up-${randomBytes(3).toString('hex')}.bin`;
    const up = await runScp([
      ...scpArgs(target('vera+hmi-01')),
      local,
      `vera+hmi-01@127.0.0.1:${remote}`,
    ]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const back = join(dir, 'back.bin');
    const down = await runScp([
      ...scpArgs(target('vera+hmi-01')),
      `vera+hmi-01@127.0.0.1:${remote}`,
      back,
    ]);
    expect(down.code).toBe(0);
    expect((await readFile(back)).equals(content)).toBe(true);
    const sha = createHash('sha256').update(content).digest('hex');
    const { rows } = await t.db.pool.query<{
      data: {
        path: string;
        direction: string;
        sha256Written: string | null;
        sha256Read: string | null;
      };
    }>(`select data from audit_events where type = 'session.file_transfer' order by seq`);
    expect(
      rows.some(
        (r) =>
          r.data.path === remote && r.data.direction === 'upload' && r.data.sha256Written === sha,
      ),
    ).toBe(true);
    expect(
      rows.some(
        (r) =>
          r.data.path === remote && r.data.direction === 'download' && r.data.sha256Read === sha,
      ),
    ).toBe(true);
  });

  it('passes on the exit status of an sftp subsystem that sends EOF before it (scp exits 0)', async () => {
    // An asset whose sftp server closes its output, then exits 300 ms later:
    // EOF reaches the gateway well before the exit status. Passed on at once,
    // the EOF let scp's ssh (its input already at EOF) close the channel first
    // and report exit status -1, and scp failed although every byte was copied.
    const scriptDir = await mkdtemp(join(tmpdir(), 'airlock-sftp-'));
    await chmod(scriptDir, 0o755);
    const script = join(scriptDir, 'slow-status-sftp');
    await writeFile(
      script,
      '#!/bin/sh\n/usr/lib/openssh/sftp-server "$@"\nexec >&- 2>&-\nsleep 0.3\nexit 0\n',
      { mode: 0o755 },
    );
    const slow = await startSshd({ sftpSubsystem: script });
    try {
      const asset = await t.call('POST', '/api/v1/assets', {
        token: t.admin.token,
        body: {
          name: 'hmi-slow-status',
          zoneId,
          host: '127.0.0.1',
          port: slow.port,
          protocol: 'ssh',
          login: slow.user.name,
          credential: slow.user.password,
          hostKey: slow.hostPublicKey,
        },
      });
      expect(asset.status).toBe(201);
      const filed = await t.call('POST', '/api/v1/requests', {
        token: vendor.token,
        body: {
          assetIds: [asset.body.id],
          durationMinutes: 30,
          reason: 'Firmware upload',
          capabilities: ['sftp'],
        },
      });
      await t.call('POST', `/api/v1/requests/${filed.body.id}/approve`, {
        token: approver.token,
        body: {},
      });
      const local = join(dir, 'status.bin');
      const content = randomBytes(64 * 1024);
      await writeFile(local, content);
      const remote = `${slow.workDir}/status-${randomBytes(3).toString('hex')}.bin`;
      const dest = `vera+hmi-slow-status@127.0.0.1:${remote}`;
      const up = await runScp([...scpArgs(target('vera+hmi-slow-status')), local, dest]);
      expect(up.code, up.stderr).toBe(0);
      const back = join(dir, 'status-back.bin');
      const down = await runScp([...scpArgs(target('vera+hmi-slow-status')), dest, back]);
      expect(down.code, down.stderr).toBe(0);
      expect((await readFile(back)).equals(content)).toBe(true);
    } finally {
      await slow.stop();
    }
  });

  it('paces a bulk transfer while someone types in a shell, and only then (interactive first)', async () => {
    // A gateway of its own at 1 MiB/s, so that pacing shows plainly in the time taken.
    const paced = await startSshGateway(t.ctx, {
      host: '127.0.0.1',
      port: 0,
      bulkMiBpsWhileInteractive: 1,
    });
    const via = (extra: string[] = []): SshTarget => ({
      ...target('vera+hmi-01', key.privateKeyPath, extra),
      port: Number(paced.address.split(':').at(-1)),
    });
    const pull = async (): Promise<{ ms: number; bytes: number }> => {
      const started = Date.now();
      const run = await runSsh([...sshArgs(via()), 'head -c 4194304 /dev/zero']);
      expect(run.code, run.stderr).toBe(0);
      return { ms: Date.now() - started, bytes: run.stdout.length };
    };
    const pacedSeconds = async (): Promise<number> =>
      (await t.ctx.metrics.bulkPacedSeconds.get()).values[0]?.value ?? 0;
    const marker = randomBytes(4).toString('hex');
    try {
      // Nobody types: the transfer runs unpaced.
      // (The metric is the broker's: other gateways of this test broker add to it.)
      const before = await pacedSeconds();
      const alone = await pull();
      expect(alone.bytes).toBe(4 * 1024 * 1024);
      expect(await pacedSeconds()).toBe(before);

      const term = interactiveSsh([...sshArgs(via(['-tt']))], { cols: 80, rows: 24 });
      await term.waitFor('asset$ ');
      term.write(`echo typing-${marker}\r`);
      await term.waitFor(`typing-${marker}\r\n`);
      // Someone typed: the same transfer (4 MiB, 256 KiB burst) takes ~3.75 s at 1 MiB/s.
      const shared = await pull();
      expect(shared.bytes).toBe(4 * 1024 * 1024);
      expect(shared.ms).toBeGreaterThan(3_000);
      expect(shared.ms).toBeGreaterThan(alone.ms + 2_000);
      expect((await pacedSeconds()) - before).toBeGreaterThan(2.5);
      // The typist's own shell is never paced: its echo comes back at once.
      const echoStarted = Date.now();
      term.write(`echo still-${marker}\r`);
      await term.waitFor(`still-${marker}\r\n`);
      expect(Date.now() - echoStarted).toBeLessThan(1_000);
      term.write('exit\r');
      await term.exited;
    } finally {
      await paced.close();
    }
  }, 60_000);

  it('seals a recording whose write committed unanswered with what is stored, so it verifies', async () => {
    // The writer commits a batch, then its answer is lost (a writer thread
    // that died, a connection dropped after COMMIT): the session fails
    // closed, and the seal must match the chunks that are in the store.
    const store = pgChunkSink(t.ctx.pool);
    let writes = 0;
    const answerLost: ChunkSink = {
      async write(chunks) {
        await store.write(chunks);
        writes += 1;
        if (writes === 3) throw new Error('the writer died before it answered');
      },
    };
    const failing = await startSshGateway(t.ctx, {
      host: '127.0.0.1',
      port: 0,
      recordingSink: answerLost,
      auditFailureGraceMs: 300,
    });
    try {
      const marker = `unanswered-${randomBytes(4).toString('hex')}`;
      const run = await runSsh(
        [
          ...sshArgs({ ...target('vera+hmi-01'), port: Number(failing.address.split(':').at(-1)) }),
          `echo ${marker}; for i in $(seq 1 40); do echo line-$i; sleep 0.05; done`,
        ],
        { timeoutMs: 15_000 },
      );
      expect(run.code).not.toBe(0);
      let ended: { id: string; recording_chunks: number; recording_head: string | null } | null =
        null;
      for (let tries = 0; ended === null && tries < 100; tries += 1) {
        const { rows } = await t.db.pool.query(
          `select s.id, s.end_reason, s.recording_chunks, s.recording_head
             from sessions s join commands c on c.session_id = s.id
            where c.command like $1`,
          [`echo ${marker};%`],
        );
        if (rows[0]?.end_reason === 'audit_failure') ended = rows[0];
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (ended === null) throw new Error('the session did not end audit_failure');
      expect(ended.recording_chunks).toBeGreaterThanOrEqual(3);
      const verified = await verifySessionRecording(t.ctx.pool, ended.id, {
        chunks: ended.recording_chunks,
        head: ended.recording_head,
      });
      expect(verified.firstBad).toBeUndefined();
      expect(verified.ok).toBe(true);
    } finally {
      await failing.close();
    }
  }, 30_000);

  it('forwards -L only to the asset’s listed ports', async () => {
    const allowed = await runSsh(
      [
        ...sshArgs(
          target('vera+hmi-01', key.privateKeyPath, [
            '-o',
            'ExitOnForwardFailure=yes',
            '-W',
            `hmi-01:${echoPort}`,
          ]),
        ),
      ],
      { input: 'ping-through-broker\n', timeoutMs: 10_000 },
    );
    expect(allowed.stdout).toContain('ping-through-broker');
    const refused = await runSsh(
      [...sshArgs(target('vera+hmi-01', key.privateKeyPath, ['-W', 'hmi-01:22']))],
      { input: 'x', timeoutMs: 10_000 },
    );
    expect(refused.code).not.toBe(0);
    const { rows } = await t.db.pool.query(
      `select 1 from audit_events where type = 'session.channel_refused' and data->>'what' = 'forward'`,
    );
    expect(rows.length).toBeGreaterThan(0);
  });

  it('ends a live session within a second of revocation, telling the vendor why', async () => {
    const term = interactiveSsh([...sshArgs(target('vera+hmi-01', key.privateKeyPath, ['-tt']))], {
      cols: 80,
      rows: 24,
    });
    await term.waitFor('asset$ ');
    const started = Date.now();
    const revoked = await t.call('POST', `/api/v1/grants/${grantId}/revoke`, {
      token: approver.token,
      body: { reason: 'process upset' },
    });
    expect(revoked.status).toBe(200);
    await term.waitFor('revoked by an approver: process upset', 2_000);
    await term.exited;
    expect(Date.now() - started).toBeLessThan(1_500);
    const { rows } = await t.db.pool.query<{ end_reason: string }>(
      `select end_reason from sessions where grant_id = $1 and end_reason = 'revoked'`,
      [grantId],
    );
    expect(rows).toHaveLength(1);
    const after = await runSsh([...sshArgs(target('vera+hmi-01')), 'true']);
    expect(after.code).toBe(255);
    const verify = await t.call('GET', '/api/v1/audit/verify', { token: t.admin.token });
    expect(verify.body.ok).toBe(true);
  });
});
