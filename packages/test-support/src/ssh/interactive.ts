import { createRequire } from 'node:module';
import type * as NodePty from 'node-pty';
import { SSH_BIN } from './client.js';

export interface PtyExit {
  readonly exitCode: number;
  readonly signal: number | undefined;
}

export interface InteractiveSsh {
  readonly pid: number;
  /** Types into the terminal. Enter is '\r', as a real terminal sends it. */
  write(data: string): void;
  /**
   * Waits until `pattern` appears in output that arrived after the previous
   * match (expect-style: each match consumes the output up to its end, so
   * waiting for the same prompt twice waits for the next prompt). Resolves
   * with all output so far. Rejects on timeout or when ssh exits first, with
   * the unmatched output in the message.
   */
  waitFor(pattern: string | RegExp, timeoutMs?: number): Promise<string>;
  /** All output so far, escape sequences included. */
  output(): string;
  /** Changes the terminal size; ssh forwards it as a window-change request. */
  resize(cols: number, rows: number): void;
  /** Hangs up (SIGHUP to ssh), then SIGKILL if it lingers; resolves with the exit. */
  close(): Promise<PtyExit>;
  /** Settles when ssh exits; never rejects. */
  readonly exited: Promise<PtyExit>;
  /** ssh's exit status: the remote shell's status when the session ended normally. */
  readonly exitCode: Promise<number>;
}

export interface InteractiveSshOptions {
  readonly cols?: number;
  readonly rows?: number;
  readonly env?: Readonly<Record<string, string>>;
}

let nodePty: typeof NodePty | undefined;

// Loaded on first use so that importing @airlock/test-support never needs the
// native binding.
function loadNodePty(): typeof NodePty {
  if (nodePty) return nodePty;
  try {
    nodePty = createRequire(import.meta.url)('node-pty') as typeof NodePty;
    return nodePty;
  } catch (err) {
    throw new Error(
      'node-pty could not be loaded: its native binding is built at install time by node-gyp ' +
        '(needs python3, make, g++ and Node headers; node-pty must be listed in ' +
        'onlyBuiltDependencies in pnpm-workspace.yaml). Run `pnpm install` again.',
      { cause: err },
    );
  }
}

interface Waiter {
  readonly pattern: string | RegExp;
  readonly resolve: (output: string) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

function findMatch(
  text: string,
  pattern: string | RegExp,
): { index: number; length: number } | null {
  if (typeof pattern === 'string') {
    const index = text.indexOf(pattern);
    return index < 0 ? null : { index, length: pattern.length };
  }
  // A copy without g/y, so lastIndex state never leaks between calls.
  const match = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')).exec(text);
  return match ? { index: match.index, length: match[0].length } : null;
}

function describe(pattern: string | RegExp): string {
  return typeof pattern === 'string' ? JSON.stringify(pattern) : String(pattern);
}

/**
 * Runs the real OpenSSH client inside a real pseudo-terminal (node-pty), so
 * ssh requests a pty from the server and the remote shell runs readline,
 * exactly as for a person at a terminal. `-tt` is added unless `args` already
 * choose with -t/-tt/-T.
 */
export function interactiveSsh(
  args: readonly string[],
  options: InteractiveSshOptions = {},
): InteractiveSsh {
  const pty = loadNodePty();
  const hasTtyFlag = args.some((arg) => /^-t+$|^-T$/.test(arg));
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...options.env }))
    if (value !== undefined) env[key] = value;
  const term = pty.spawn(SSH_BIN, hasTtyFlag ? [...args] : ['-tt', ...args], {
    name: 'xterm-256color',
    cols: options.cols ?? 80,
    rows: options.rows ?? 24,
    cwd: process.cwd(),
    env,
  });

  let buffer = '';
  let cursor = 0;
  let ptyExited = false;
  // Set a moment after the exit, once the last output is in: settle() then
  // fails the waiters whose pattern never came.
  let exitInfo: PtyExit | undefined;
  const waiters: Waiter[] = [];

  const settle = (): void => {
    for (let i = 0; i < waiters.length;) {
      const waiter = waiters[i];
      if (!waiter) break;
      const match = findMatch(buffer.slice(cursor), waiter.pattern);
      if (match) {
        cursor += match.index + match.length;
        clearTimeout(waiter.timer);
        waiters.splice(i, 1);
        waiter.resolve(buffer);
        i = 0;
      } else if (exitInfo) {
        clearTimeout(waiter.timer);
        waiters.splice(i, 1);
        waiter.reject(
          new Error(
            `ssh exited (code ${exitInfo.exitCode}) before ${describe(waiter.pattern)} appeared; ` +
              `unmatched output: ${JSON.stringify(buffer.slice(cursor))}`,
          ),
        );
      } else i += 1;
    }
  };

  let resolveExit: (exit: PtyExit) => void = () => undefined;
  const exitedPromise = new Promise<PtyExit>((resolve) => (resolveExit = resolve));
  term.onData((data) => {
    buffer += data;
    settle();
  });
  term.onExit(({ exitCode, signal }) => {
    ptyExited = true;
    // onExit can fire before the last output is delivered; give it a turn.
    setTimeout(() => {
      exitInfo = { exitCode, signal };
      settle();
      resolveExit({ exitCode, signal });
    }, 20);
  });

  return {
    pid: term.pid,
    write(data) {
      if (!ptyExited) term.write(data);
    },
    waitFor(pattern, timeoutMs = 10_000) {
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = waiters.findIndex((w) => w.timer === timer);
          if (index >= 0) waiters.splice(index, 1);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${describe(pattern)}; ` +
                `unmatched output: ${JSON.stringify(buffer.slice(cursor))}`,
            ),
          );
        }, timeoutMs);
        waiters.push({ pattern, resolve, reject, timer });
        settle();
      });
    },
    output: () => buffer,
    resize(cols, rows) {
      if (!ptyExited) term.resize(cols, rows);
    },
    async close() {
      if (!ptyExited) {
        term.kill('SIGHUP');
        const timer = setTimeout(() => {
          if (!ptyExited) term.kill('SIGKILL');
        }, 3_000);
        await exitedPromise;
        clearTimeout(timer);
      }
      return exitedPromise;
    },
    exited: exitedPromise,
    exitCode: exitedPromise.then((exit) => exit.exitCode),
  };
}

// CSI, OSC, charset selection and the short ESC sequences a VT emits.
/* eslint-disable no-control-regex -- matching control characters is the point */
const ANSI_ESCAPES =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]/g;
/* eslint-enable no-control-regex */

/** Removes ANSI/VT escape sequences from terminal output. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_ESCAPES, '');
}
