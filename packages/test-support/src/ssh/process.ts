import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

export interface RunResult {
  /** Exit status; null when the process died of a signal (also after a timeout). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as bytes, for binary output. */
  readonly stdoutBytes: Buffer;
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. Without it stdin is closed at once. */
  readonly input?: string | Buffer;
  readonly timeoutMs?: number;
  /** Added to (and overriding) this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

export const OPENSSH_CLIENT_INSTALL_HINT =
  'Install the OpenSSH client and server: apt-get install -y openssh-client openssh-server';

/**
 * Runs a program without a shell and collects its output. Never rejects on a
 * non-zero exit: callers assert on `code`. Rejects only when the program
 * cannot be started at all, naming the package to install.
 */
export function runProgram(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // The program may exit before reading all of its input (EPIPE): its exit
    // status tells the caller what happened.
    child.stdin.on('error', () => undefined);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new Error(`${file} not found. ${OPENSSH_CLIENT_INSTALL_HINT}`, { cause: err })
          : err,
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(stdout);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        stdoutBytes,
        timedOut,
      });
    });
    child.stdin.end(options.input);
  });
}

/** Like runProgram, but rejects with the program's stderr unless it exits 0. */
export async function runChecked(
  file: string,
  args: readonly string[],
  input?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err)
        reject(
          new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, {
            cause: err,
          }),
        );
      else resolve(stdout);
    });
    child.stdin?.end(input);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitForPort(
  port: number,
  host = '127.0.0.1',
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** A process identity that survives pid reuse: the pid plus its start time. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: string;
}

function readStat(pid: number): { ppid: number; startTime: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, starttime field 22.
    return { ppid: Number(fields[1]), startTime: fields[19] ?? '' };
  } catch {
    return null;
  }
}

/**
 * Every live descendant of `pid`, found through /proc (Linux). sshd's
 * per-connection processes call setsid(), so a process-group kill misses
 * them; their parent pid still points at the listener until it exits.
 */
export function descendantsOf(pid: number): ProcessIdentity[] {
  const children = new Map<number, ProcessIdentity[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const child = Number(entry);
    const stat = readStat(child);
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push({ pid: child, startTime: stat.startTime });
    children.set(stat.ppid, list);
  }
  const found: ProcessIdentity[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of children.get(next) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/** Signals a process only if it is still the one we recorded. */
export function signalIfSame(identity: ProcessIdentity, signal: NodeJS.Signals): void {
  if (readStat(identity.pid)?.startTime !== identity.startTime) return;
  try {
    process.kill(identity.pid, signal);
  } catch {
    // Already gone.
  }
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
