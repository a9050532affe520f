/**
 * Runs the zone connector as its own process, the way an operator would
 * (`airlock-connector --broker … [--enroll …]`), as one Node process (tsx
 * loaded as an import hook, no launcher in between) so that a signal — even
 * SIGKILL — reaches the connector itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { newcomerEnv, REPO_ROOT, type Env } from './broker.js';

const READY_LINE = /^airlock-connector ready connector=(con_\w+) zone=(zon_\w+)\s*$/m;

export interface ConnectorProcess {
  readonly pid: number;
  readonly connectorId: string;
  readonly dataDir: string;
  stdout(): string;
  stderr(): string;
  /** Resolves when `pattern` has appeared in stdout after `fromIndex` (default: anywhere). */
  waitForOutput(pattern: RegExp, timeoutMs?: number, fromIndex?: number): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM (or the given signal), waiting for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface ConnectorRun {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stdout: () => string;
  readonly stderr: () => string;
}

/** Starts the process and returns at once (for runs expected to fail, e.g. a refused enrolment). */
export function runConnector(options: {
  brokerUrl: string;
  dataDir: string;
  enroll?: string;
  env?: Env;
}): ConnectorRun {
  const args = [
    '--import',
    'tsx',
    join(REPO_ROOT, 'services/connector/src/main.ts'),
    '--broker',
    options.brokerUrl,
    '--data-dir',
    options.dataDir,
    ...(options.enroll === undefined ? [] : ['--enroll', options.enroll]),
  ];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: newcomerEnv({
      AIRLOCK_CONNECTOR_BACKOFF_INITIAL_MS: '100',
      AIRLOCK_CONNECTOR_BACKOFF_MAX_MS: '1000',
      ...options.env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, stdout: () => out, stderr: () => err };
}

/** Starts a connector and waits for its ready line (its first control link is up). */
export async function spawnConnector(options: {
  brokerUrl: string;
  dataDir: string;
  enroll?: string;
  env?: Env;
  readyTimeoutMs?: number;
}): Promise<ConnectorProcess> {
  const run = runConnector(options);
  const printed = (): string => `--- stdout ---\n${run.stdout()}\n--- stderr ---\n${run.stderr()}`;
  const waitForOutput = (pattern: RegExp, timeoutMs = 30_000, fromIndex = 0): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(run.stdout().slice(fromIndex))) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`connector printed no ${String(pattern)} in time\n${printed()}`));
      }, timeoutMs);
      const onExit = (): void => {
        cleanup();
        reject(new Error(`connector exited before ${String(pattern)}\n${printed()}`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        run.child.stdout!.off('data', check);
        run.child.off('exit', onExit);
      };
      run.child.stdout!.on('data', check);
      run.child.once('exit', onExit);
      check();
    });
  try {
    await waitForOutput(READY_LINE, options.readyTimeoutMs ?? 60_000);
  } catch (e) {
    run.child.kill('SIGKILL');
    throw e;
  }
  const connectorId = READY_LINE.exec(run.stdout())![1]!;
  return {
    pid: run.child.pid!,
    connectorId,
    dataDir: options.dataDir,
    stdout: run.stdout,
    stderr: run.stderr,
    waitForOutput,
    exited: run.exited,
    signal: (signal) => run.child.kill(signal),
    async stop(signal = 'SIGTERM') {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill(signal);
      await run.exited;
    },
  };
}
