import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@airlock/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  askpassEnv,
  generateClientKey,
  interactiveSsh,
  remotePath,
  runProgram,
  runScp,
  runSftp,
  runSsh,
  scpArgs,
  sftpArgs,
  spawnSsh,
  sshArgs,
  startSshd,
  stripAnsi,
  waitForPort,
  type SshdFixture,
} from '../index.js';

let asset: SshdFixture;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'airlock-sshd-test-'));
  asset = await startSshd();
});

afterAll(async () => {
  await asset?.stop();
  await rm(scratch, { recursive: true, force: true });
});

function echoServer(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.pipe(socket));
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    });
  });
}

function echoOnce(port: number, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (received.length >= message.length) {
        socket.end();
        resolve(received);
      }
    });
    socket.once('error', reject);
    socket.write(message);
  });
}

describe('startSshd', () => {
  it('fails loudly, with install instructions, when sshd is missing', async () => {
    await expect(startSshd({ sshdPath: '/nonexistent/sbin/sshd' })).rejects.toThrow(
      /apt-get install -y openssh-server/,
    );
  });

  it('runs an exec command and logs exactly what ran', async () => {
    const result = await runSsh([...sshArgs(asset.directTarget), 'echo hi']);
    expect(result).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect(await asset.commandLog()).toContain('echo hi');
    expect(await asset.execLog()).toContain('echo hi');

    const piped = await runSsh([...sshArgs(asset.directTarget), 'ls / | grep -x etc']);
    expect(piped.stdout).toBe('etc\n');
    const log = await asset.commandLog();
    // Each simple command of the pipeline, none of the shell's startup files.
    expect(log.slice(-2)).toEqual(['ls /', 'grep -x etc']);
    expect(log.some((line) => line.includes('AIRLOCK') || line.includes('PS1'))).toBe(false);
    expect((await asset.execLog()).at(-1)).toBe('ls / | grep -x etc');
  });

  it('reports the remote exit status and passes stdin through', async () => {
    expect((await runSsh([...sshArgs(asset.directTarget), 'exit 7'])).code).toBe(7);
    const cat = await runSsh([...sshArgs(asset.directTarget), 'tr a-z A-Z'], { input: 'piped\n' });
    expect(cat).toMatchObject({ code: 0, stdout: 'PIPED\n' });
  });

  it('gives an interactive session a real pty, readline and a history of submitted lines', async () => {
    const session = interactiveSsh(sshArgs(asset.directTarget), { cols: 100, rows: 30 });
    try {
      await session.waitFor('asset$ ');
      session.write('echo one\r');
      await session.waitFor('echo one\r\n'); // the terminal's echo of what was typed
      await session.waitFor('one\r\n'); // the command's output
      await session.waitFor('asset$ ');
      session.write('stty size\r');
      await session.waitFor('stty size\r\n');
      await session.waitFor('30 100\r\n');
      session.resize(120, 40);
      session.write('stty size\r');
      await session.waitFor('40 120\r\n');
      // readline: Ctrl-A then typing at the start of the line edits it.
      session.write('cho $((40+2))\x01e\r');
      await session.waitFor('42\r\n'); // only the output, not the echoed line, can hold 42
      session.write('exit\r');
      expect(await session.exitCode).toBe(0);
    } finally {
      await session.close();
    }
    expect(stripAnsi(session.output())).toContain('asset$ echo one');
    const history = await asset.historyLog();
    expect(history).toEqual(
      expect.arrayContaining(['echo one', 'stty size', 'echo $((40+2))', 'exit']),
    );
    expect(await asset.commandLog()).toEqual(
      expect.arrayContaining(['echo one', 'echo $((40+2))']),
    );
    expect(await asset.commandLog()).not.toContain('history -a');
  });

  it('transfers a 1 MiB file up and back byte-identical with scp (SFTP and legacy protocol) and sftp', async () => {
    const original = randomBytes(1024 * 1024);
    const local = join(scratch, 'upload.bin');
    await writeFile(local, original);
    const name = `scp-${randomBytes(4).toString('hex')}.bin`;
    const remote = join(asset.workDir, name);

    const up = await runScp([
      ...scpArgs(asset.directTarget),
      local,
      remotePath(asset.directTarget, remote),
    ]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect((await readFile(remote)).equals(original)).toBe(true);
    const back = join(scratch, 'download.bin');
    const down = await runScp([
      ...scpArgs(asset.directTarget),
      remotePath(asset.directTarget, remote),
      back,
    ]);
    expect(down.code).toBe(0);
    expect((await readFile(back)).equals(original)).toBe(true);

    // Legacy scp runs `scp -t` through the shell: it shows in the exec log.
    const legacy = await runScp([
      ...scpArgs({ ...asset.directTarget, extra: ['-O'] }),
      local,
      remotePath(asset.directTarget, `${remote}.legacy`),
    ]);
    expect(legacy.code).toBe(0);
    expect((await readFile(`${remote}.legacy`)).equals(original)).toBe(true);
    expect((await asset.execLog()).at(-1)).toBe(`scp -t ${remote}.legacy`);

    const viaSftp = join(scratch, 'via-sftp.bin');
    const sftp = await runSftp(sftpArgs({ ...asset.directTarget, extra: ['-b', '-'] }), {
      input: `put ${local} ${remote}.sftp\nget ${remote}.sftp ${viaSftp}\n`,
    });
    expect(sftp.code).toBe(0);
    expect((await readFile(viaSftp)).equals(original)).toBe(true);
  });

  it('forwards a local port with ssh -L to a TCP server', async () => {
    const { server, port: echoPort } = await echoServer();
    const localPort = await freePort();
    const tunnel = spawnSsh(
      sshArgs({
        ...asset.directTarget,
        extra: [
          '-N',
          '-o',
          'ExitOnForwardFailure=yes',
          '-L',
          `127.0.0.1:${localPort}:127.0.0.1:${echoPort}`,
        ],
      }),
    );
    try {
      await waitForPort(localPort);
      expect(await echoOnce(localPort, 'ping through the asset')).toBe('ping through the asset');
    } finally {
      await tunnel.stop();
      server.close();
    }
    expect(asset.serverLog().join('\n')).toMatch(/Accepted publickey for airlock-asset/);
  });

  it('pins the host key: the right key connects, any other is refused', async () => {
    const pinned = join(scratch, 'known_hosts_right');
    await writeFile(pinned, `${asset.knownHostsLine}\n`);
    const ok = await runSsh([
      ...sshArgs({ ...asset.directTarget, knownHostsFile: pinned }),
      'true',
    ]);
    expect(ok.code).toBe(0);
    expect(asset.knownHostsLine).toBe(`[127.0.0.1]:${asset.port} ${asset.hostPublicKey}`);
    expect(asset.hostPublicKey).toMatch(/^ssh-ed25519 AAAA[0-9A-Za-z+/=]+$/);

    const other = await generateClientKey(scratch);
    const wrong = join(scratch, 'known_hosts_wrong');
    await writeFile(wrong, `[127.0.0.1]:${asset.port} ${other.publicKey}\n`);
    const refused = await runSsh([
      ...sshArgs({ ...asset.directTarget, knownHostsFile: wrong }),
      'touch /tmp/never',
    ]);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Host key verification failed/);
  });

  it('authenticates with the test password through askpass, and refuses a wrong one', async () => {
    const target = {
      host: asset.host,
      port: asset.port,
      user: asset.user.name,
      batchMode: false,
      extra: ['-o', 'PreferredAuthentications=password'],
    };
    const right = await runSsh([...sshArgs(target), 'echo by-password'], {
      env: await askpassEnv(scratch, asset.user.password),
    });
    expect(right).toMatchObject({ code: 0, stdout: 'by-password\n' });
    const wrong = await runSsh([...sshArgs(target), 'echo never'], {
      env: await askpassEnv(scratch, 'not-the-password'),
    });
    expect(wrong.code).toBe(255);
    expect(await asset.commandLog()).not.toContain('echo never');
  });

  it('computes key fingerprints as ssh-keygen does', async () => {
    const key = await generateClientKey(scratch);
    const listed = await runProgram('/usr/bin/ssh-keygen', ['-l', '-f', key.publicKeyPath]);
    expect(listed.stdout.split(' ')[1]).toBe(key.fingerprint);
    expect(asset.user.privateKeyPem).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  });

  it('runs independent instances in parallel without interference', async () => {
    const [a, b] = await Promise.all([startSshd(), startSshd()]);
    try {
      expect(a.port).not.toBe(b.port);
      expect(a.hostPublicKey).not.toBe(b.hostPublicKey);
      const [ra, rb] = await Promise.all([
        runSsh([...sshArgs(a.directTarget), 'echo from-a']),
        runSsh([...sshArgs(b.directTarget), 'echo from-b']),
      ]);
      expect([ra.stdout, rb.stdout]).toEqual(['from-a\n', 'from-b\n']);
      expect(await a.commandLog()).toEqual(['echo from-a']);
      expect(await b.commandLog()).toEqual(['echo from-b']);
      // Each instance authorizes only its own user key.
      const crossed = await runSsh([
        ...sshArgs({ ...b.directTarget, identityFile: a.user.privateKeyPath }),
        'true',
      ]);
      expect(crossed.code).toBe(255);
      expect(crossed.stderr).toMatch(/Permission denied/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('stop() ends live sessions, frees the port and removes its files', async () => {
    const doomed = await startSshd();
    const session = interactiveSsh(sshArgs(doomed.directTarget));
    await session.waitFor('asset$ ');
    const sleeper = runSsh([...sshArgs(doomed.directTarget), 'sleep 60']);
    await expect.poll(() => doomed.commandLog()).toContain('sleep 60');
    await doomed.stop();
    expect((await session.exited).exitCode).not.toBe(0);
    expect((await sleeper).code).toBe(255);
    expect(existsSync(doomed.dir)).toBe(false);
    const after = await runProgram('/usr/bin/ssh', [...sshArgs(doomed.directTarget), 'true']).catch(
      () => null,
    );
    expect(after?.code).toBe(255);
    await expect(waitForPort(doomed.port, '127.0.0.1', 200)).rejects.toThrow(/nothing accepted/);
  });
});
