import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync } from 'node:fs';
import {
  appendFile,
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@airlock/db';
import { ensureAssetUser } from './asset-user.js';
import { generateClientKey, knownHostsLine, sshKeyFingerprint, type SshTarget } from './client.js';
import {
  descendantsOf,
  exited,
  runProgram,
  signalIfSame,
  sleep,
  waitForPort,
  type ProcessIdentity,
} from './process.js';

export const SSHD_BIN = '/usr/sbin/sshd';
const SETPRIV_BIN = '/usr/bin/setpriv';

/** The Debian packages the SSH fixtures and client helpers need. */
export const SSH_TEST_PACKAGES = ['openssh-server', 'openssh-client'] as const;
const INSTALL_HINT = `The SSH tests drive a real OpenSSH sshd as the OT asset and never skip. Install it: apt-get update && apt-get install -y ${SSH_TEST_PACKAGES.join(' ')}`;

export interface StartSshdOptions {
  /** Defaults to /usr/sbin/sshd. */
  readonly sshdPath?: string;
  /** More sshd_config lines, appended after the fixture's own (which win: sshd keeps the first value). */
  readonly extraConfig?: readonly string[];
  /**
   * The sftp subsystem's command line (sshd runs it with the user's shell).
   * Default: internal-sftp.
   */
  readonly sftpSubsystem?: string;
  /** Public keys accepted besides the fixture's own user key. */
  readonly authorizedKeys?: readonly string[];
  /** Receives each line sshd logs (LogLevel VERBOSE). */
  readonly log?: (line: string) => void;
  readonly startTimeoutMs?: number;
}

export interface SshdFixtureUser {
  readonly name: string;
  /** Test-only, shared by all instances (see ASSET_USER_PASSWORD). */
  readonly password: string;
  /** The fixture user's private key, OpenSSH format ("-----BEGIN OPENSSH PRIVATE KEY-----"). */
  readonly privateKeyPem: string;
  readonly privateKeyPath: string;
  /** `ssh-ed25519 AAAA… comment`, authorized on this instance only. */
  readonly publicKey: string;
}

/**
 * A real OpenSSH sshd on 127.0.0.1 standing in for an OT asset, with ground
 * truth of what ran on it. Several can run at once: each has its own port,
 * host key, authorized keys and logs; they share the Unix account.
 */
export interface SshdFixture {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly pid: number;
  /** `ssh-ed25519 AAAA…` (no comment): the key to pin for this asset. */
  readonly hostPublicKey: string;
  readonly hostKeyFingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…` */
  readonly knownHostsLine: string;
  readonly user: SshdFixtureUser;
  /** The account's home: shared by all instances, so use unique file names there. */
  readonly homeDir: string;
  /** A directory of this instance only, owned and writable by the user. */
  readonly workDir: string;
  /** This instance's temp dir (config, keys, logs); removed by stop(). */
  readonly dir: string;
  /** Connects straight to this sshd as the user, with its key and its host key pinned. */
  readonly directTarget: SshTarget;
  /**
   * Every simple command the session shells executed at top level, in order
   * (bash DEBUG trap: `ls / | head` gives "ls /" and "head"). Interactive and
   * exec sessions alike; commands inside scripts or sourced files are not listed.
   */
  commandLog(): Promise<string[]>;
  /** Lines submitted at interactive shells, exactly as typed (bash history). */
  historyLog(): Promise<string[]>;
  /** Command strings of exec requests (`ssh host 'cmd'`, legacy `scp -t …`), one entry each. */
  execLog(): Promise<string[]>;
  /** sshd's own log lines so far (connections, auth, sessions). */
  serverLog(): string[];
  addAuthorizedKey(publicKey: string): Promise<void>;
  /** Kills sshd and every session it started, then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

class PortTakenError extends Error {}

const live = new Set<{ pid: number; dir: string }>();
let exitHookInstalled = false;

// Last resort when a test file forgets stop() or the worker exits early.
// setpriv --pdeathsig covers the listener if this process is killed outright.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const instance of live) {
      for (const child of descendantsOf(instance.pid)) signalIfSame(child, 'SIGKILL');
      try {
        process.kill(instance.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
      rmSync(instance.dir, { recursive: true, force: true });
    }
  });
}

function assertPrerequisites(sshdPath: string): void {
  try {
    accessSync(sshdPath, constants.X_OK);
  } catch {
    throw new Error(`OpenSSH server not found at ${sshdPath}. ${INSTALL_HINT}`);
  }
  if (process.getuid?.() !== 0)
    throw new Error(
      'The sshd fixture must run as root: it creates the airlock-asset account and runs sshd, ' +
        'which switches to that user for each session.',
    );
}

/** A double-quoted sshd_config argument. */
function quoted(value: string): string {
  if (/["\n]/.test(value)) throw new Error(`unsupported character in sshd_config value: ${value}`);
  return `"${value}"`;
}

interface ConfigInput {
  readonly port: number;
  readonly dir: string;
  readonly userName: string;
  readonly hookPath: string;
  readonly commandLogPath: string;
  readonly historyLogPath: string;
  readonly execLogPath: string;
  readonly withPenaltiesOff: boolean;
  readonly extraConfig: readonly string[];
  readonly sftpSubsystem: string;
}

function sshdConfig(input: ConfigInput): string {
  return [
    '# Written by @airlock/test-support (src/ssh/sshd.ts) for one test fixture.',
    'AddressFamily inet',
    'ListenAddress 127.0.0.1',
    `Port ${input.port}`,
    `HostKey ${quoted(join(input.dir, 'ssh_host_ed25519_key'))}`,
    `PidFile ${quoted(join(input.dir, 'sshd.pid'))}`,
    'UsePAM no',
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitEmptyPasswords no',
    // Absolute, so every instance has its own; readable by the user, which is
    // how sshd opens it. StrictModes no: the file and its dir belong to root.
    `AuthorizedKeysFile ${quoted(join(input.dir, 'authorized_keys'))}`,
    'StrictModes no',
    `Subsystem sftp ${input.sftpSubsystem}`,
    'AllowTcpForwarding yes',
    'PermitTTY yes',
    'X11Forwarding no',
    'PermitRootLogin no',
    `AllowUsers ${input.userName}`,
    'PermitUserEnvironment no',
    'LogLevel VERBOSE',
    'MaxStartups 100:30:200',
    'MaxSessions 50',
    'LoginGraceTime 30',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'Banner none',
    // Ground truth of what ran: see asset-user.ts for how the shell uses these.
    `SetEnv ${[
      `AIRLOCK_HOOK=${input.hookPath}`,
      `BASH_ENV=${input.hookPath}`,
      `AIRLOCK_CMDLOG=${input.commandLogPath}`,
      `AIRLOCK_HISTLOG=${input.historyLogPath}`,
      `AIRLOCK_EXECLOG=${input.execLogPath}`,
    ]
      .map(quoted)
      .join(' ')}`,
    // OpenSSH >= 9.8 would otherwise lock 127.0.0.1 out after tests that
    // fail authentication on purpose.
    ...(input.withPenaltiesOff ? ['PerSourcePenalties no'] : []),
    ...input.extraConfig,
    '',
  ].join('\n');
}

/**
 * Sourced once by each session's shell. The DEBUG trap logs each simple
 * command about to run at top level (BASH_SOURCE empty: not from a sourced
 * file), except PROMPT_COMMAND. Entries are NUL-terminated, so multi-line
 * commands survive. BASH_ENV is unset so that scripts the user runs do not
 * log their insides.
 */
const HOOK = `# Written by @airlock/test-support (src/ssh/sshd.ts).
unset BASH_ENV
if [ -n "\${AIRLOCK_CMDLOG:-}" ] && [ -z "\${__airlock_hooked:-}" ]; then
  __airlock_hooked=1
  if [ -n "\${BASH_EXECUTION_STRING:-}" ] && [ -n "\${AIRLOCK_EXECLOG:-}" ]; then
    printf '%s\\0' "$BASH_EXECUTION_STRING" >> "$AIRLOCK_EXECLOG" 2>/dev/null
  fi
  trap '[[ -z \${BASH_SOURCE[0]-} && $BASH_COMMAND != "$PROMPT_COMMAND" ]] && printf "%s\\0" "$BASH_COMMAND" >> "$AIRLOCK_CMDLOG" 2>/dev/null' DEBUG
fi
`;

let penaltiesOption: boolean | undefined;

/** Validates the config with `sshd -t`, learning once whether PerSourcePenalties exists. */
async function writeCheckedConfig(
  sshdPath: string,
  configPath: string,
  input: Omit<ConfigInput, 'withPenaltiesOff'>,
): Promise<void> {
  for (const withPenaltiesOff of penaltiesOption === undefined
    ? [true, false]
    : [penaltiesOption]) {
    await writeFile(configPath, sshdConfig({ ...input, withPenaltiesOff }), { mode: 0o600 });
    const check = await runProgram(sshdPath, ['-t', '-f', configPath]);
    if (check.code === 0) {
      penaltiesOption = withPenaltiesOff;
      return;
    }
    if (!(withPenaltiesOff && /PerSourcePenalties/.test(check.stderr)))
      throw new Error(`sshd rejected the fixture's config (${configPath}): ${check.stderr.trim()}`);
  }
  throw new Error(`sshd rejected the fixture's config (${configPath})`);
}

async function readEntries(path: string, separator: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const entries = text.split(separator);
  if (entries[entries.length - 1] === '') entries.pop();
  return entries;
}

interface Launched {
  readonly child: ChildProcess;
  readonly lines: string[];
}

async function launch(
  sshdPath: string,
  configPath: string,
  port: number,
  timeoutMs: number,
  log: ((line: string) => void) | undefined,
): Promise<Launched> {
  const sshdArgs = ['-D', '-e', '-f', configPath];
  // setpriv --pdeathsig: sshd gets SIGTERM if this process dies without cleanup.
  const child = existsSync(SETPRIV_BIN)
    ? spawn(SETPRIV_BIN, ['--pdeathsig', 'TERM', sshdPath, ...sshdArgs], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(sshdPath, sshdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let listening = false;
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (lines.length < 100_000) lines.push(line);
      log?.(line);
      if (line.startsWith(`Server listening on 127.0.0.1 port ${port}`)) listening = true;
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  const deadline = Date.now() + timeoutMs;
  while (!listening) {
    if (spawnError)
      throw new Error(`could not start ${sshdPath}: ${spawnError.message}. ${INSTALL_HINT}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      const output = lines.join('\n');
      if (/Address already in use|Cannot bind any address/.test(output))
        throw new PortTakenError(output);
      throw new Error(
        `sshd exited (${child.exitCode ?? child.signalCode}) before listening:\n${output}`,
      );
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`sshd did not listen within ${timeoutMs} ms:\n${lines.join('\n')}`);
    }
    await sleep(20);
  }
  await waitForPort(port, '127.0.0.1', Math.max(1_000, deadline - Date.now()));
  return { child, lines };
}

/** Starts a fresh sshd fixture. Always pair with stop() (e.g. in afterAll). */
export async function startSshd(options: StartSshdOptions = {}): Promise<SshdFixture> {
  const sshdPath = options.sshdPath ?? SSHD_BIN;
  assertPrerequisites(sshdPath);
  const assetUser = await ensureAssetUser();
  // Privilege separation directory; Debian creates it only when the service starts.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(join(tmpdir(), 'airlock-sshd-'));
  let launched: Launched | undefined;
  try {
    await chmod(dir, 0o711);
    const assetDir = join(dir, 'asset');
    const workDir = join(dir, 'work');
    await mkdir(assetDir, { mode: 0o700 });
    await mkdir(workDir, { mode: 0o755 });
    await chown(assetDir, assetUser.uid, assetUser.gid);
    await chown(workDir, assetUser.uid, assetUser.gid);

    const hostKey = await generateClientKey(dir, {
      name: 'ssh_host_ed25519_key',
      comment: 'airlock-asset-host',
    });
    const hostPublicKey = hostKey.publicKey.split(/\s+/).slice(0, 2).join(' ');
    const userKey = await generateClientKey(dir, {
      name: 'user_ed25519',
      comment: 'airlock-asset-fixture',
    });
    await writeFile(
      join(dir, 'authorized_keys'),
      [userKey.publicKey, ...(options.authorizedKeys ?? [])].join('\n') + '\n',
      {
        mode: 0o644,
      },
    );
    const hookPath = join(dir, 'hook.bash');
    await writeFile(hookPath, HOOK, { mode: 0o644 });
    const configPath = join(dir, 'sshd_config');
    const configInput = {
      dir,
      userName: assetUser.name,
      hookPath,
      commandLogPath: join(assetDir, 'commands.log'),
      historyLogPath: join(assetDir, 'history'),
      execLogPath: join(assetDir, 'exec.log'),
      extraConfig: options.extraConfig ?? [],
      sftpSubsystem: options.sftpSubsystem ?? 'internal-sftp',
    };

    let port = 0;
    for (let attempt = 1; !launched; attempt++) {
      port = await freePort();
      await writeCheckedConfig(sshdPath, configPath, { ...configInput, port });
      try {
        launched = await launch(
          sshdPath,
          configPath,
          port,
          options.startTimeoutMs ?? 10_000,
          options.log,
        );
      } catch (err) {
        // Another process took the port between freePort() and sshd's bind.
        if (!(err instanceof PortTakenError) || attempt >= 5) throw err;
      }
    }
    const { child, lines } = launched;
    const pid = child.pid ?? 0;
    // A forgotten stop() must not keep the test process alive; the exit hook
    // then kills sshd.
    child.unref();
    for (const stream of [child.stdout, child.stderr])
      (stream as { unref?: () => void } | null)?.unref?.();
    const instance = { pid, dir };
    live.add(instance);
    installExitHook();

    const knownHosts = knownHostsLine('127.0.0.1', port, hostPublicKey);
    const knownHostsFile = join(dir, 'known_hosts');
    await writeFile(knownHostsFile, `${knownHosts}\n`);

    let stopping: Promise<void> | undefined;
    const stop = async (): Promise<void> => {
      const sessions: ProcessIdentity[] = descendantsOf(pid);
      child.kill('SIGTERM');
      for (const session of sessions) signalIfSame(session, 'SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited(child);
      clearTimeout(timer);
      await sleep(50);
      for (const session of sessions) signalIfSame(session, 'SIGKILL');
      live.delete(instance);
      await rm(dir, { recursive: true, force: true });
    };

    return {
      host: '127.0.0.1',
      port,
      pid,
      hostPublicKey,
      hostKeyFingerprint: sshKeyFingerprint(hostPublicKey),
      knownHostsLine: knownHosts,
      user: {
        name: assetUser.name,
        password: assetUser.password,
        privateKeyPem: await readFile(userKey.privateKeyPath, 'utf8'),
        privateKeyPath: userKey.privateKeyPath,
        publicKey: userKey.publicKey,
      },
      homeDir: assetUser.homeDir,
      workDir,
      dir,
      directTarget: {
        host: '127.0.0.1',
        port,
        user: assetUser.name,
        identityFile: userKey.privateKeyPath,
        knownHostsFile,
      },
      commandLog: () => readEntries(configInput.commandLogPath, '\0'),
      historyLog: () => readEntries(configInput.historyLogPath, '\n'),
      execLog: () => readEntries(configInput.execLogPath, '\0'),
      serverLog: () => [...lines],
      addAuthorizedKey: (publicKey) =>
        appendFile(join(dir, 'authorized_keys'), `${publicKey.trim()}\n`),
      stop: () => (stopping ??= stop()),
    };
  } catch (err) {
    launched?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
