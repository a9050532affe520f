import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  OPENSSH_CLIENT_INSTALL_HINT,
  runChecked,
  runProgram,
  type RunOptions,
  type RunResult,
} from './process.js';

export const SSH_BIN = '/usr/bin/ssh';
export const SCP_BIN = '/usr/bin/scp';
export const SFTP_BIN = '/usr/bin/sftp';
export const SSH_KEYGEN_BIN = '/usr/bin/ssh-keygen';

export interface ClientKey {
  readonly privateKeyPath: string;
  readonly publicKeyPath: string;
  /** `ssh-ed25519 AAAA… comment`, as in an authorized_keys line. */
  readonly publicKey: string;
  /** `SHA256:…`, as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
}

/**
 * The SHA256 fingerprint of an OpenSSH public key line: base64 of the SHA-256
 * of the key blob, without padding (the format of `ssh-keygen -l`).
 */
export function sshKeyFingerprint(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1];
  if (!blob) throw new Error(`not an OpenSSH public key: ${publicKey}`);
  const digest = createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** A fresh ed25519 key pair made by ssh-keygen, unencrypted, in `dir`. */
export async function generateClientKey(
  dir: string,
  options: { name?: string; comment?: string } = {},
): Promise<ClientKey> {
  await mkdir(dir, { recursive: true });
  const name = options.name ?? `id_ed25519_${randomBytes(4).toString('hex')}`;
  const privateKeyPath = join(dir, name);
  await runChecked(SSH_KEYGEN_BIN, [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    options.comment ?? 'airlock-test',
    '-f',
    privateKeyPath,
  ]).catch((err: unknown) => {
    throw new Error(`could not generate an SSH key. ${OPENSSH_CLIENT_INSTALL_HINT}`, {
      cause: err,
    });
  });
  const publicKeyPath = `${privateKeyPath}.pub`;
  const publicKey = (await readFile(publicKeyPath, 'utf8')).trim();
  return { privateKeyPath, publicKeyPath, publicKey, fingerprint: sshKeyFingerprint(publicKey) };
}

/** A known_hosts line pinning `hostPublicKey` for host:port. */
export function knownHostsLine(host: string, port: number, hostPublicKey: string): string {
  const [type, blob] = hostPublicKey.trim().split(/\s+/);
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${type} ${blob}`;
}

export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Private key to offer. Without it no key is offered at all (IdentitiesOnly). */
  readonly identityFile?: string;
  /**
   * Pins host keys: StrictHostKeyChecking=yes against this file. Without it
   * any host key is accepted and nothing is remembered.
   */
  readonly knownHostsFile?: string;
  /**
   * BatchMode=yes (the default) forbids every prompt. Turn it off to answer
   * password or keyboard-interactive (TOTP) prompts through askpassEnv().
   */
  readonly batchMode?: boolean;
  /**
   * Placed first, before the defaults: ssh keeps the first value it sees for
   * each -o option, so `-o Name=value` here overrides a default. Also the
   * place for -tt, -N, -L, -v.
   */
  readonly extra?: readonly string[];
}

/** The options shared by ssh, scp and sftp: no config files, no agent, no surprises. */
export function sshCommonOptions(target: SshTarget): string[] {
  const pinned = target.knownHostsFile !== undefined;
  const options = [
    ...(target.extra ?? []),
    '-F',
    '/dev/null',
    '-o',
    `BatchMode=${target.batchMode === false ? 'no' : 'yes'}`,
    '-o',
    `StrictHostKeyChecking=${pinned ? 'yes' : 'no'}`,
    '-o',
    `UserKnownHostsFile=${target.knownHostsFile ?? '/dev/null'}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'ConnectTimeout=10',
    // Errors still print; "Permanently added … to the list of known hosts" does not.
    '-o',
    'LogLevel=ERROR',
  ];
  if (target.identityFile !== undefined) options.push('-i', target.identityFile);
  return options;
}

/** argv for `ssh`, ending with the destination: append a remote command if any. */
export function sshArgs(target: SshTarget): string[] {
  return [...sshCommonOptions(target), '-p', String(target.port), `${target.user}@${target.host}`];
}

/** argv for `scp` without the paths: append sources and destination (see remotePath). */
export function scpArgs(target: SshTarget): string[] {
  return [...sshCommonOptions(target), '-P', String(target.port)];
}

/** argv for `sftp`, ending with the destination. Use `-b -` in `extra` to feed a batch on stdin. */
export function sftpArgs(target: SshTarget): string[] {
  return [...sshCommonOptions(target), '-P', String(target.port), `${target.user}@${target.host}`];
}

/** `user@host:path`, the remote operand of scp. */
export function remotePath(target: Pick<SshTarget, 'user' | 'host'>, path: string): string {
  return `${target.user}@${target.host}:${path}`;
}

export function runSsh(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return runProgram(SSH_BIN, args, options);
}

export function runScp(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return runProgram(SCP_BIN, args, options);
}

export function runSftp(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return runProgram(SFTP_BIN, args, options);
}

/**
 * Environment that makes ssh answer every password or keyboard-interactive
 * prompt with `answer` (SSH_ASKPASS_REQUIRE=force, OpenSSH 8.4+), so tests
 * need no sshpass. Use with `batchMode: false`. Writes a script into `dir`.
 */
export async function askpassEnv(dir: string, answer: string): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const script = join(dir, `askpass-${randomBytes(4).toString('hex')}.sh`);
  const quoted = `'${answer.replace(/'/g, `'\\''`)}'`;
  await writeFile(script, `#!/bin/sh\nprintf '%s\\n' ${quoted}\n`, { mode: 0o700 });
  return { SSH_ASKPASS: script, SSH_ASKPASS_REQUIRE: 'force' };
}

export interface BackgroundSsh {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Settles when ssh exits; never rejects. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * A long-running `ssh` (typically `-N -L …` for port forwarding), stdin from
 * /dev/null. Pair with waitForPort() to know when a forward is listening, and
 * add `-o ExitOnForwardFailure=yes` so a refused forward ends ssh at once.
 */
export function spawnSsh(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string>> } = {},
): BackgroundSsh {
  const child = spawn(SSH_BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (error) => {
      err += `${error.message}. ${OPENSSH_CLIENT_INSTALL_HINT}\n`;
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exit;
    },
  };
}
