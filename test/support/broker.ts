/**
 * Runs Airlock the way its README tells a person to: `pnpm start` and
 * `pnpm airlock …` from the repository root, as real processes, reading what
 * they print. End-to-end tests build on these helpers; nothing here reaches
 * into the broker's code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const READY_LINE = /^airlock ready http=(\S+)(?: ssh=(\S+))?\s*$/m;
const ADMIN_PASSWORD_LINE = /^airlock: created user "admin" with password: (\S+)\s*$/m;

export type Env = Record<string, string | undefined>;

/**
 * The environment of a newcomer's shell: ours, minus anything that would point
 * the broker at the suite's servers or otherwise configure it. `overrides`
 * win; an override of `undefined` removes the variable.
 */
export function newcomerEnv(overrides: Env = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (name === 'DATABASE_URL' || name === 'REDIS_URL' || name === 'NODE_ENV') continue;
    if (name.startsWith('AIRLOCK_') || name.startsWith('VITEST')) continue;
    env[name] = value;
  }
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface BrokerProcess {
  /** `http://host:port` from the ready line. */
  readonly httpUrl: string;
  /** `host:port` of the SSH gateway, once the broker prints one. */
  readonly sshAddress: string | null;
  /** Printed on the first start only (no AIRLOCK_ADMIN_PASSWORD, no users yet). */
  readonly adminPassword: string | null;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when `pnpm` exits. */
  readonly exited: Promise<ExitStatus>;
  /**
   * Sends `signal` to the broker process itself, as a service manager would,
   * and waits for `pnpm` to exit. (pnpm does not pass signals on to the
   * script it runs, so signalling pnpm would only orphan the broker.)
   */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ExitStatus>;
  /** Sends `signal` to the whole process group, as Ctrl-C in a terminal does. */
  signalGroup(signal: NodeJS.Signals): void;
  /** Last resort for cleanup: SIGKILL the process group (broker, tsx, embedded PostgreSQL). */
  kill(): Promise<void>;
}

interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly args: string;
}

/** Every process on the machine, from /proc (Linux only, like CI). */
function processTable(): ProcessInfo[] {
  const table: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may itself contain spaces or parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      table.push({ pid: Number(entry), ppid: Number(fields[1]), args });
    } catch {
      // The process ended while we looked.
    }
  }
  return table;
}

function descendantsOf(pid: number): ProcessInfo[] {
  const table = processTable();
  const found: ProcessInfo[] = [];
  const parents = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of table) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/**
 * The broker's top process under `pnpm start`: the `tsx` launcher (which relays
 * signals to the Node process it starts), or failing that the broker itself.
 */
function brokerProcessUnder(pid: number): number | null {
  const runsBroker = descendantsOf(pid).filter(
    (p) =>
      p.args.includes('services/broker/src/main.ts') && !/^(\S*\/)?(sh|bash|dash) /.test(p.args),
  );
  const launcher = runsBroker.find((p) => p.args.includes('tsx/dist/cli'));
  return (launcher ?? runsBroker[0])?.pid ?? null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function exitOf(child: ChildProcess): Promise<ExitStatus> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/**
 * `pnpm start` (or another root script, e.g. `demo`) in its own process
 * group, resolved once the broker prints its ready line. Rejects, with what
 * the process printed, if it exits first or is not ready in `readyTimeoutMs`.
 */
export async function spawnBroker(options: {
  dataDir: string;
  env?: Env;
  script?: 'start' | 'demo';
  readyTimeoutMs?: number;
}): Promise<BrokerProcess> {
  const env = newcomerEnv({
    AIRLOCK_DATA_DIR: options.dataDir,
    AIRLOCK_HTTP_PORT: '0',
    AIRLOCK_SSH_PORT: '0',
    ...options.env,
  });
  const child = spawn('pnpm', [options.script ?? 'start'], {
    cwd: REPO_ROOT,
    env,
    detached: true, // its own process group, so cleanup can reach every descendant
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const exited = exitOf(child);
  await spawned;
  const pid = child.pid!;
  const printed = (): string => `--- stdout ---\n${out}\n--- stderr ---\n${err}`;

  const kill = async (): Promise<void> => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      return; // the group is gone
    }
    await withTimeout(exited, 10_000, () => 'pnpm did not exit after SIGKILL').catch(
      () => undefined,
    );
  };

  try {
    const match = await withTimeout(
      new Promise<RegExpExecArray>((resolve, reject) => {
        const check = (): void => {
          const m = READY_LINE.exec(out);
          if (m !== null) resolve(m);
        };
        child.stdout.on('data', check);
        check();
        void exited.then((status) =>
          reject(
            new Error(
              `pnpm ${options.script ?? 'start'} exited (${JSON.stringify(status)}) before it was ready\n${printed()}`,
            ),
          ),
        );
      }),
      options.readyTimeoutMs ?? 90_000,
      () => `pnpm ${options.script ?? 'start'} printed no ready line in time\n${printed()}`,
    );
    const password = ADMIN_PASSWORD_LINE.exec(out)?.[1] ?? null;
    return {
      httpUrl: `http://${match[1]!}`,
      sshAddress: match[2] ?? null,
      adminPassword: password,
      pid,
      stdout: () => out,
      stderr: () => err,
      exited,
      async stop({ signal = 'SIGTERM', timeoutMs = 20_000 } = {}) {
        const target = brokerProcessUnder(pid);
        if (target === null)
          throw new Error(`no broker process under pnpm (pid ${pid})\n${printed()}`);
        process.kill(target, signal);
        return withTimeout(
          exited,
          timeoutMs,
          () => `the broker did not exit within ${timeoutMs} ms of ${signal}\n${printed()}`,
        );
      },
      signalGroup(signal) {
        process.kill(-pid, signal);
      },
      kill,
    };
  } catch (e) {
    await kill();
    throw e;
  }
}

/** Kills what is left of a broker's process group; safe to call on null or twice. */
export async function killBroker(broker: BrokerProcess | null | undefined): Promise<void> {
  if (broker === null || broker === undefined) return;
  if (isAlive(-broker.pid) || isAlive(broker.pid)) await broker.kill();
}

export interface CliResult extends ExitStatus {
  readonly stdout: string;
  readonly stderr: string;
}

/** `pnpm airlock <args>` against a data dir, as an operator would run it. */
export async function runCli(
  args: readonly string[],
  options: { dataDir: string; env?: Env; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  const child = spawn('pnpm', ['airlock', ...args], {
    cwd: REPO_ROOT,
    env: newcomerEnv({ AIRLOCK_DATA_DIR: options.dataDir, ...options.env }),
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(options.input ?? '');
  const exited = exitOf(child);
  const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));
  try {
    const status = await withTimeout(
      Promise.race([exited, spawnFailed]),
      options.timeoutMs ?? 60_000,
      () =>
        `pnpm airlock ${args.join(' ')} did not finish\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
    );
    return { ...status, stdout, stderr };
  } catch (e) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    throw e;
  }
}

/** The JSON document a command printed after pnpm's `> airlock@ …` banner. */
export function printedJson(stdout: string): unknown {
  const start = stdout.search(/^[{[]/m);
  if (start < 0) throw new Error(`no JSON in output:\n${stdout}`);
  return JSON.parse(stdout.slice(start));
}

/** JSON lines printed after pnpm's banner (e.g. `airlock audit export`). */
export function printedJsonLines(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as unknown);
}
