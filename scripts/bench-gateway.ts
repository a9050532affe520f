/**
 * Measures what the SSH gateway costs a vendor, against a real OpenSSH sshd
 * standing in for the asset, with the broker in this process (recording on,
 * as always):
 *
 *   memory      memory per idle interactive session held by the broker (N
 *               sessions opened in steps; a control run straight to sshd
 *               measures what holding the clients costs this process; each step
 *               waits until the sessions have been quiet long enough for idle
 *               shells to put their terminal emulators to rest);
 *   latency     keystroke echo latency in `ssh -tt` sessions running `cat` on
 *               the asset's tty, direct and through the broker, sampled in turn;
 *   throughput  `ssh … 'cat FILE' > /dev/null`, direct vs through the broker,
 *               best of --runs, with the CPU each process used meanwhile;
 *   recorder    diagnostic: the recorder and its PostgreSQL sink alone.
 *
 * Both client legs use aes128-gcm@openssh.com; the broker→asset leg uses
 * ssh2's client defaults (the negotiated cipher is printed). Memory runs first,
 * while the process holds the least garbage; throughput last, because it
 * leaves gigabytes for PostgreSQL to checkpoint.
 *
 * Prints a table to stdout, progress to stderr, and writes the figures to
 * test-output/bench-gateway.json. Reports against the targets; asserts nothing.
 *
 *   pnpm bench:gateway [--size 256M] [--only memory,latency,throughput,recorder]
 *                      [--runs 2] [--samples 500] [--gap-ms 5] [--sessions 50] [--profile]
 *                      [--recording-writer thread|inline]  (thread: as deployed)
 *
 * Needs root (the sshd fixture runs sshd and owns the asset account), the
 * OpenSSH client and server, and node-pty's binding (built by pnpm install).
 * PostgreSQL: a fresh `bench_<random>` database on DATABASE_URL's server, or,
 * when DATABASE_URL is unset, an embedded PostgreSQL in a temp dir (what a
 * single-node broker runs by default). Everything it starts is removed at the
 * end, also after a failure or Ctrl-C.
 *
 * Memory figures need a callable gc(): `NODE_OPTIONS=--expose-gc pnpm bench:gateway`
 * provides it; without it the script turns the flag on itself (v8.setFlagsFromString).
 * `--profile` records a V8 CPU profile of the first through-broker transfer
 * (test-output/bench-gateway-broker.cpuprofile) and prints where the broker's time went.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { Session as InspectorSession } from 'node:inspector/promises';
import {
  constants as perfConstants,
  performance,
  PerformanceObserver,
  type PerformanceEntry,
} from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { newId, Secret, systemClock } from '@airlock/domain';
import { configForTest, loadConfig } from '../packages/config/src/index.js';
import {
  base32Decode,
  generateMasterKey,
  parseMasterKey,
  totpCode,
} from '../packages/crypto/src/index.js';
import { createPool, migrate, startEmbeddedPostgres, type Pool } from '../packages/db/src/index.js';
import { pgChunkSink, SessionRecorder } from '../packages/recording/src/index.js';
import { MIGRATIONS_DIR } from '../packages/test-support/src/paths.js';
import {
  generateClientKey,
  runProgram,
  SSH_BIN,
  sshArgs,
  startSshd,
  type SshdFixture,
  type SshTarget,
} from '../packages/test-support/src/ssh/index.js';
import { buildApp } from '../services/broker/src/app.js';
import { ensureAdminUser } from '../services/broker/src/bootstrap.js';
import { createBrokerContext } from '../services/broker/src/context-factory.js';
import { insertSession } from '../services/broker/src/features/sessions/repository.js';
import {
  nativeCryptoAvailable,
  DEFAULT_TERMINAL_REST_AFTER_MS,
  startSshGateway,
  type SshGateway,
} from '../services/broker/src/gateway/server.js';
import type { App } from '../services/broker/src/http/app-types.js';
import type { BrokerContext } from '../services/broker/src/context.js';
import type { AssetDialer } from '../services/broker/src/gateway/upstream.js';
import { INTERACTIVE_WINDOW_MS } from '../services/broker/src/gateway/pacing.js';
import { createLogger } from '../services/broker/src/logger.js';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const OUTPUT_DIR = join(REPO_ROOT, 'test-output');
export const CIPHER = 'aes128-gcm@openssh.com';
const TARGETS = {
  throughputRatio: 0.5,
  addedEchoP99Ms: 2,
  bytesPerIdleSession: 250 * 1000,
} as const;
const PHASES = ['memory', 'latency', 'throughput', 'recorder'] as const;
type Phase = (typeof PHASES)[number];
export const MiB = 1024 * 1024;
/** `thread`: the gateway's recording writer thread (as deployed); `inline`: pg writes on its event loop. */
export const RECORDING_WRITERS = ['thread', 'inline'] as const;
export type RecordingWriter = (typeof RECORDING_WRITERS)[number];
const BROKER_PROFILE = 'bench-gateway-broker.cpuprofile';

// ---------------------------------------------------------------- options

interface Options {
  sizeBytes: number;
  runs: number;
  samples: number;
  warmup: number;
  gapMs: number;
  sessions: number;
  phases: ReadonlySet<Phase>;
  profile: boolean;
  recordingWriter: RecordingWriter;
}

/** "1G", "256M", "512MiB", "1048576": binary units. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (match === null) throw new Error(`--size: cannot read "${text}" (try 256M or 1G)`);
  const power = ' kmgt'.indexOf((match[2] ?? '').toLowerCase() || ' ');
  const bytes = Math.round(Number(match[1]) * 1024 ** power);
  if (bytes < MiB) throw new Error('--size must be at least 1M');
  return bytes;
}

export function parseRecordingWriter(text: string): RecordingWriter {
  if (!(RECORDING_WRITERS as readonly string[]).includes(text))
    throw new Error(`--recording-writer is one of ${RECORDING_WRITERS.join(', ')}`);
  return text as RecordingWriter;
}

function positive(name: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`--${name} must be an integer from 1 to ${max}`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string', default: '1G' },
      runs: { type: 'string', default: '2' },
      samples: { type: 'string', default: '500' },
      'gap-ms': { type: 'string', default: '5' },
      sessions: { type: 'string', default: '50' },
      only: { type: 'string' },
      profile: { type: 'boolean', default: false },
      'recording-writer': { type: 'string', default: 'thread' },
    },
    strict: true,
  });
  const only = values.only?.split(',').map((p) => p.trim()) ?? [...PHASES];
  const unknown = only.filter((p) => !(PHASES as readonly string[]).includes(p));
  if (unknown.length > 0)
    throw new Error(`--only: unknown phase ${unknown.join(', ')} (phases: ${PHASES.join(', ')})`);
  return {
    sizeBytes: parseSize(values.size),
    runs: positive('runs', values.runs, 10),
    // A tty in canonical mode keeps at most 4095 typed characters of one line;
    // past that it stops echoing, so the samples (+ warm-up) must fit.
    samples: positive('samples', values.samples, 4000),
    warmup: 20,
    gapMs: positive('gap-ms', values['gap-ms'], 1000),
    sessions: positive('sessions', values.sessions, 200),
    phases: new Set(only as Phase[]),
    profile: values.profile,
    recordingWriter: parseRecordingWriter(values['recording-writer']),
  };
}

// ---------------------------------------------------------------- small helpers

const startedNs = process.hrtime.bigint();
const elapsed = (): string =>
  `${(Number(process.hrtime.bigint() - startedNs) / 1e9).toFixed(1).padStart(6)}s`;
export const progress = (message: string): void =>
  void process.stderr.write(`[bench ${elapsed()}] ${message}\n`);
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
export const msSince = (t0: bigint, t1 = process.hrtime.bigint()): number => Number(t1 - t0) / 1e6;
export const load = (): [number, number, number] =>
  loadavg().map((l) => Math.round(l * 100) / 100) as [number, number, number];
export const loadText = (l: readonly number[]): string => l.map((x) => x.toFixed(2)).join(' / ');
export const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;

export interface GcPauses {
  pauses: number;
  totalMs: number;
  maxMs: number;
  /** The pauses' share of the measured time. */
  percentOfTime: number;
  byKind: Record<string, { n: number; totalMs: number; maxMs: number }>;
}

const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};

/** Starts recording this process's (the broker's) garbage-collection pauses; stop() sums them up. */
export function gcMeter(): { stop(): GcPauses } {
  const started = performance.now();
  const result: GcPauses = { pauses: 0, totalMs: 0, maxMs: 0, percentOfTime: 0, byKind: {} };
  const count = (entries: readonly PerformanceEntry[]): void => {
    for (const entry of entries) {
      const kind = ((entry as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind;
      const name = GC_KINDS[kind ?? 0] ?? String(kind);
      const k = (result.byKind[name] ??= { n: 0, totalMs: 0, maxMs: 0 });
      k.n += 1;
      k.totalMs = round(k.totalMs + entry.duration, 1);
      k.maxMs = round(Math.max(k.maxMs, entry.duration), 1);
      result.pauses += 1;
      result.totalMs = round(result.totalMs + entry.duration, 1);
      result.maxMs = round(Math.max(result.maxMs, entry.duration), 1);
    }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      count(observer.takeRecords());
      observer.disconnect();
      result.percentOfTime = round((result.totalMs / (performance.now() - started)) * 100, 1);
      return result;
    },
  };
}

/** The machine's CPU time so far (all CPUs, clock ticks), from the first line of /proc/stat. */
function machineTicks(): { total: number; steal: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
}

/**
 * Starts measuring steal time: the share of CPU time the hypervisor gave to
 * other guests while this one wanted it. On a shared VM it is what makes one
 * run's latency tail differ from the next; the reports print it beside each figure.
 */
export function stealMeter(): () => number {
  const start = machineTicks();
  return () => {
    const end = machineTicks();
    const total = end.total - start.total;
    return total > 0 ? round(((end.steal - start.steal) / total) * 100, 1) : 0;
  };
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

export interface LatencyStats {
  samples: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function latencyStats(values: readonly number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return {
    samples: sorted.length,
    p50: round(percentile(sorted, 0.5), 3),
    p90: round(percentile(sorted, 0.9), 3),
    p99: round(percentile(sorted, 0.99), 3),
    max: round(sorted.at(-1) ?? NaN, 3),
    mean: round(mean, 3),
  };
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const verdict = (ok: boolean): string => (ok ? 'meets target' : 'MISSES target');

// ---------------------------------------------------------------- cleanup

/** Undo steps, run last-registered first, each on its own so one failure does not skip the rest. */
const undo: { name: string; run: () => Promise<unknown> }[] = [];
export const defer = (name: string, run: () => Promise<unknown>): void =>
  void undo.push({ name, run });
export const liveChildren = new Set<ChildProcess>();
const livePtys = new Set<Pty>();
let cleaning: Promise<void> | null = null;

export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    // Clients first, so the broker and sshd see ordinary disconnects.
    for (const child of liveChildren)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pty of livePtys) {
      try {
        pty.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const step of undo.reverse()) {
      try {
        await Promise.race([
          step.run(),
          sleep(30_000).then(() => {
            throw new Error('timed out after 30 s');
          }),
        ]);
      } catch (err) {
        progress(`cleanup: ${step.name} failed: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}

// Broker code runs in this process: an exception it leaves uncaught must not
// skip the cleanup (sshd, PostgreSQL, the database). During a measurement it
// ends the run as a failure; during the cleanup it is logged and the cleanup goes on.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    progress(`${event}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (cleaning === null) void cleanUp().finally(() => process.exit(1));
  });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- CPU accounting (/proc)

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on every Linux Node runs on

/** utime + stime (clock ticks) and start time of a process, from /proc/<pid>/stat; null once it is gone. */
function procTimes(
  pid: number | string,
): { ownTicks: number; childTicks: number; start: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: the rest starts after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const field = (i: number): number => Number(rest[i - 3]);
    return { ownTicks: field(14) + field(15), childTicks: field(16) + field(17), start: field(22) };
  } catch {
    return null;
  }
}

/** A process and all its descendants, through /proc/<pid>/task/<tid>/children. */
function treePids(root: number): number[] {
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() ?? 0;
    found.push(pid);
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (children !== '') queue.push(...children.split(' ').map(Number));
      }
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

export interface CpuSeconds {
  /** This process: the broker (the benchmark driver is idle while it measures). */
  broker: number;
  /** The broker's main thread alone: the event loop every session's keystrokes wait for. */
  brokerMainThread: number;
  /** ssh clients this process started and reaped (its cutime + cstime). */
  sshClients: number;
  /** sshd and its session processes (cat included); null when unknown. */
  sshd: number | null;
  /** The PostgreSQL server and its backends; null when it is not local (DATABASE_URL). */
  postgres: number | null;
}

export interface CpuProcesses {
  sshdPid: number;
  postgresPid: number | null;
}

/**
 * CPU used by each part while a measurement runs. sshd's session processes
 * come and go and are not reaped in a way that lands in sshd's cutime, so the
 * trees are sampled every 100 ms and each process's last reading counted
 * (a process that lives under 100 ms may be missed).
 */
export class CpuMeter {
  readonly #trees = new Map<
    'sshd' | 'postgres',
    { root: number | null; seen: Map<string, { base: number; last: number }> }
  >();
  readonly #self = procTimes('self');
  readonly #mainThread = procTimes(`${process.pid}/task/${process.pid}`);
  #first = true;
  readonly #timer: NodeJS.Timeout;

  constructor(p: CpuProcesses) {
    this.#trees.set('sshd', { root: p.sshdPid, seen: new Map() });
    this.#trees.set('postgres', { root: p.postgresPid, seen: new Map() });
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 100);
  }

  #sample(): void {
    for (const tree of this.#trees.values()) {
      if (tree.root === null) continue;
      for (const pid of treePids(tree.root)) {
        const t = procTimes(pid);
        if (t === null) continue;
        const key = `${pid}:${t.start}`;
        const entry = tree.seen.get(key);
        if (entry === undefined)
          tree.seen.set(key, { base: this.#first ? t.ownTicks : 0, last: t.ownTicks });
        else entry.last = t.ownTicks;
      }
    }
    this.#first = false;
  }

  stop(): CpuSeconds {
    this.#sample();
    clearInterval(this.#timer);
    const self = procTimes('self');
    const mainThread = procTimes(`${process.pid}/task/${process.pid}`);
    const seconds = (name: 'sshd' | 'postgres'): number | null => {
      const tree = this.#trees.get(name);
      if (tree === undefined || tree.root === null) return null;
      let ticks = 0;
      for (const e of tree.seen.values()) ticks += e.last - e.base;
      return round(ticks / CLOCK_TICKS);
    };
    return {
      broker: round(((self?.ownTicks ?? 0) - (this.#self?.ownTicks ?? 0)) / CLOCK_TICKS),
      brokerMainThread: round(
        ((mainThread?.ownTicks ?? 0) - (this.#mainThread?.ownTicks ?? 0)) / CLOCK_TICKS,
      ),
      sshClients: round(((self?.childTicks ?? 0) - (this.#self?.childTicks ?? 0)) / CLOCK_TICKS),
      sshd: seconds('sshd'),
      postgres: seconds('postgres'),
    };
  }
}

// ---------------------------------------------------------------- pty (node-pty, loaded from the test-support package)

interface Pty {
  readonly pid: number;
  onData(listener: (data: string) => void): unknown;
  onExit(listener: (e: { exitCode: number; signal?: number }) => void): unknown;
  write(data: string): void;
  kill(signal?: string): void;
}

interface PtyModule {
  spawn(
    file: string,
    args: string[],
    options: { name: string; cols: number; rows: number; cwd: string; env: Record<string, string> },
  ): Pty;
}

let ptyModule: PtyModule | undefined;
function nodePty(): PtyModule {
  ptyModule ??= createRequire(new URL('../packages/test-support/package.json', import.meta.url))(
    'node-pty',
  ) as PtyModule;
  return ptyModule;
}

function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return env;
}

// ---------------------------------------------------------------- broker setup

export interface ApiResult<T> {
  status: number;
  body: T;
}

function apiClient(app: App) {
  return async function call<T>(
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    token?: string,
    body?: object,
  ): Promise<ApiResult<T>> {
    const response = await app.inject({
      method,
      url,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { payload: body }),
    });
    const json =
      String(response.headers['content-type'] ?? '').includes('application/json') &&
      response.body !== '';
    return {
      status: response.statusCode,
      body: (json ? JSON.parse(response.body) : response.body) as T,
    };
  };
}

function expectStatus<T>(what: string, result: ApiResult<T>, status: number): T {
  if (result.status !== status)
    throw new Error(`${what}: HTTP ${result.status} ${JSON.stringify(result.body)}`);
  return result.body;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export interface Database {
  pool: Pool;
  postgresPid: number | null;
  server: 'DATABASE_URL' | 'embedded';
}

async function openDatabase(): Promise<Database> {
  let serverUrl = loadConfig().databaseUrl?.reveal() ?? null;
  let postgresPid: number | null = null;
  const server = serverUrl === null ? 'embedded' : 'DATABASE_URL';
  if (serverUrl === null) {
    progress('DATABASE_URL is unset: starting an embedded PostgreSQL');
    const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-pg-'));
    defer('remove the embedded PostgreSQL data dir', () =>
      rm(dir, { recursive: true, force: true }),
    );
    const embedded = await startEmbeddedPostgres({ dataDir: dir, database: 'postgres' });
    defer('stop the embedded PostgreSQL', () => embedded.stop());
    serverUrl = embedded.connectionString;
    postgresPid =
      Number(readFileSync(join(dir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
  }
  const name = `bench_${randomBytes(6).toString('hex')}`;
  const admin = createPool({
    connectionString: serverUrl,
    max: 1,
    applicationName: 'airlock-bench-admin',
  });
  defer('close the admin connection', () => admin.end());
  await admin.query(`create database ${name}`);
  defer(`drop database ${name}`, () => admin.query(`drop database if exists ${name} with (force)`));
  const pool = createPool({
    connectionString: withDatabase(serverUrl, name),
    max: 10,
    applicationName: 'airlock-bench',
  });
  defer('close the broker pool', () => pool.end());
  await migrate(pool, MIGRATIONS_DIR);
  return { pool, postgresPid, server };
}

export interface Bench {
  db: Database;
  ctx: BrokerContext;
  app: App;
  /** The HTTP API, in process (app.inject), for further set-up by other benchmarks. */
  call: <T>(
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    token?: string,
    body?: object,
  ) => Promise<ApiResult<T>>;
  tokens: { admin: string; vendor: string; approver: string };
  approverId: string;
  clientKey: string;
  gateway: SshGateway;
  sshd: SshdFixture;
  direct: SshTarget;
  broker: SshTarget;
  ids: { userId: string; assetId: string; zoneId: string; grantId: string; instanceId: string };
  cpu: CpuProcesses;
}

export async function setUp(
  options: {
    /** How the gateway reaches assets (default: directly); the HTTP app is built, not listening. */
    dialer?: (ctx: BrokerContext, app: App) => Promise<AssetDialer>;
    /** Where recordings are written: the gateway's writer thread (default, as deployed) or its event loop. */
    recordingWriter?: RecordingWriter;
    /** Bulk channels' shared rate while someone types (default: the config's, as deployed); 0: off. */
    bulkMiBpsWhileInteractive?: number;
  } = {},
): Promise<Bench> {
  const db = await openDatabase();
  const adminPassword = randomBytes(18).toString('base64url');
  const config = configForTest({ logLevel: 'warn', adminPassword: new Secret(adminPassword) });
  // Operator logs (warnings and errors only) go to stderr, out of the table's way.
  const log = createLogger('warn', { write: (line: string) => void process.stderr.write(line) });
  const ctx = createBrokerContext({
    config,
    pool: db.pool,
    clock: systemClock,
    log,
    masterKey: parseMasterKey(generateMasterKey()),
    defaultMetrics: false,
  });
  const app = await buildApp(ctx);
  defer('close the HTTP app', () => app.close());
  await ensureAdminUser(ctx, () => undefined);
  const call = apiClient(app);

  interface Login {
    token: string;
    user: { id: string };
    totpEnrollmentRequired?: boolean;
  }
  const signIn = async (
    username: string,
    password: string,
  ): Promise<{ id: string; token: string }> => {
    const login = expectStatus(
      `login ${username}`,
      await call<Login>('POST', '/api/v1/auth/login', undefined, { username, password }),
      200,
    );
    if (login.totpEnrollmentRequired !== true) return { id: login.user.id, token: login.token };
    const started = expectStatus(
      'start TOTP',
      await call<{ secret: string }>('POST', '/api/v1/me/totp', login.token),
      200,
    );
    const code = totpCode(base32Decode(started.secret), Date.now());
    const confirmed = expectStatus(
      'confirm TOTP',
      await call<{ token: string }>('POST', '/api/v1/me/totp/confirm', login.token, { code }),
      200,
    );
    return { id: login.user.id, token: confirmed.token };
  };
  const admin = await signIn('admin', adminPassword);
  const userPassword = randomBytes(18).toString('base64url');
  const newUser = async (
    username: string,
    roles: string[],
    organization?: string,
  ): Promise<{ id: string; token: string }> => {
    const body = {
      username,
      password: userPassword,
      roles,
      ...(organization === undefined ? {} : { organization }),
    };
    expectStatus(`create ${username}`, await call('POST', '/api/v1/users', admin.token, body), 201);
    return signIn(username, userPassword);
  };

  progress('starting the sshd fixture and the SSH gateway');
  const sshd = await startSshd();
  defer('stop the sshd fixture', () => sshd.stop());
  const gateway = await startSshGateway(ctx, {
    host: '127.0.0.1',
    port: 0,
    ...(options.dialer === undefined ? {} : { dialer: await options.dialer(ctx, app) }),
    ...(options.recordingWriter === 'inline' ? { recordingSink: pgChunkSink(ctx.pool) } : {}),
    ...(options.bulkMiBpsWhileInteractive === undefined
      ? {}
      : { bulkMiBpsWhileInteractive: options.bulkMiBpsWhileInteractive }),
  });
  defer('close the SSH gateway', () => gateway.close());
  const keyDir = await mkdtemp(join(tmpdir(), 'airlock-bench-keys-'));
  defer('remove the client key', () => rm(keyDir, { recursive: true, force: true }));
  const key = await generateClientKey(keyDir, { name: 'vendor' });

  const vendor = await newUser('vera', ['vendor'], 'Bench GmbH');
  const approver = await newUser('alice', ['approver']);
  expectStatus(
    'register SSH key',
    await call('POST', '/api/v1/me/ssh-keys', vendor.token, { publicKey: key.publicKey }),
    201,
  );
  const zone = expectStatus(
    'create zone',
    await call<{ id: string }>('POST', '/api/v1/zones', admin.token, {
      name: 'Bench zone',
      policy: { requiredApprovals: 1, allowedCapabilities: ['shell', 'exec'] },
    }),
    201,
  );
  expectStatus(
    'assign approver',
    await call('PUT', `/api/v1/zones/${zone.id}/approvers`, admin.token, {
      userIds: [approver.id],
    }),
    200,
  );
  const asset = expectStatus(
    'create asset',
    await call<{ id: string }>('POST', '/api/v1/assets', admin.token, {
      name: 'bench-01',
      zoneId: zone.id,
      host: sshd.host,
      port: sshd.port,
      protocol: 'ssh',
      login: sshd.user.name,
      credential: sshd.user.password,
      hostKey: sshd.hostPublicKey,
    }),
    201,
  );
  const request = expectStatus(
    'file request',
    await call<{ id: string }>('POST', '/api/v1/requests', vendor.token, {
      assetIds: [asset.id],
      durationMinutes: 120,
      reason: 'gateway benchmark',
      capabilities: ['shell', 'exec'],
    }),
    201,
  );
  const approved = expectStatus(
    'approve',
    await call<{ grantIds: string[] }>(
      'POST',
      `/api/v1/requests/${request.id}/approve`,
      approver.token,
      {},
    ),
    200,
  );

  const extra = ['-o', `Ciphers=${CIPHER}`];
  return {
    db,
    ctx,
    app,
    call,
    tokens: { admin: admin.token, vendor: vendor.token, approver: approver.token },
    approverId: approver.id,
    clientKey: key.privateKeyPath,
    gateway,
    sshd,
    direct: { ...sshd.directTarget, extra },
    broker: {
      host: '127.0.0.1',
      port: Number(gateway.address.split(':').at(-1)),
      user: 'vera+bench-01',
      identityFile: key.privateKeyPath,
      extra,
    },
    ids: {
      userId: vendor.id,
      assetId: asset.id,
      zoneId: zone.id,
      grantId: approved.grantIds[0] ?? '',
      instanceId: gateway.instanceId,
    },
    cpu: { sshdPid: sshd.pid, postgresPid: db.postgresPid },
  };
}

/** The newest gateway session, once its end (and so its sealed recording) is in the database. */
async function lastEndedSession(
  pool: Pool,
  timeoutMs = 120_000,
): Promise<{ id: string; bytesToClient: number; recordedOutputBytes: number; chunks: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ id: string; ended: boolean; bytes_to_client: string }>(
      'select id, ended_at is not null as ended, bytes_to_client from sessions order by started_at desc limit 1',
    );
    const row = rows[0];
    if (row?.ended === true) {
      const rec = await pool.query<{ bytes: string; chunks: string }>(
        `select coalesce(sum(octet_length(data)), 0) as bytes, count(*) as chunks from session_chunks where session_id = $1 and kind = 'o'`,
        [row.id],
      );
      return {
        id: row.id,
        bytesToClient: Number(row.bytes_to_client),
        recordedOutputBytes: Number(rec.rows[0]?.bytes ?? 0),
        chunks: Number(rec.rows[0]?.chunks ?? 0),
      };
    }
    if (Date.now() > deadline) throw new Error('the gateway session did not end in time');
    await sleep(50);
  }
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------- 1. throughput

/**
 * Waits until no interactive session has had a keystroke for the gateway's
 * interactive window: bulk transfers measured afterwards run unpaced, as they
 * do whenever nobody is typing (see BulkPacer).
 */
export async function outlastInteractiveWindow(): Promise<void> {
  progress(
    `waiting ${INTERACTIVE_WINDOW_MS / 1000} s: transfers after the echo samples run unpaced, as when nobody types`,
  );
  await sleep(INTERACTIVE_WINDOW_MS + 250);
}

export interface TransferRun {
  seconds: number;
  mibPerSecond: number;
  load: [number, number, number];
  cpuSeconds: CpuSeconds;
  /** The broker's garbage-collection pauses during the transfer. */
  gc: GcPauses;
  session?: { id: string; bytesToClient: number; recordedOutputBytes: number; chunks: number };
}

export async function transfer(
  b: Bench,
  via: 'direct' | 'broker',
  file: string,
  sizeBytes: number,
  /** Profiles the broker during the transfer, into this file under test-output/. */
  profile: { session: InspectorSession; file: string } | null,
  /** Another path through the broker (e.g. through a zone connector). */
  target?: SshTarget,
): Promise<TransferRun> {
  const profiler = profile?.session ?? null;
  const args = [...sshArgs(target ?? (via === 'direct' ? b.direct : b.broker)), `cat '${file}'`];
  const meter = new CpuMeter(b.cpu);
  const gc = gcMeter();
  if (profiler !== null) await profiler.post('Profiler.start');
  const t0 = process.hrtime.bigint();
  // stdout straight to /dev/null: this process never touches the payload.
  const child = spawn(SSH_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  liveChildren.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  const seconds = msSince(t0) / 1000;
  const gcPauses = gc.stop();
  liveChildren.delete(child);
  if (code !== 0) throw new Error(`ssh ${via} 'cat' exited ${code}: ${stderr.trim()}`);
  const session = via === 'broker' ? await lastEndedSession(b.db.pool) : undefined;
  if (profiler !== null) {
    const { profile: cpuProfile } = await profiler.post('Profiler.stop');
    writeFileSync(join(OUTPUT_DIR, profile?.file ?? ''), JSON.stringify(cpuProfile));
  }
  if (session !== undefined && session.bytesToClient !== sizeBytes)
    throw new Error(`the broker carried ${session.bytesToClient} bytes, not ${sizeBytes}`);
  await sleep(300); // the CPU meter's last readings of the session's processes
  return {
    seconds: round(seconds, 3),
    mibPerSecond: round(sizeBytes / MiB / seconds, 1),
    load: load(),
    cpuSeconds: meter.stop(),
    gc: gcPauses,
    ...(session ? { session } : {}),
  };
}

export async function makePayload(sshd: SshdFixture, sizeBytes: number): Promise<string> {
  const file = join(sshd.workDir, 'payload.bin');
  // Random bytes: zeros would flatter TOAST compression of the recording.
  const fd = openSync(file, 'w', 0o644);
  try {
    const head = spawn('head', ['-c', String(sizeBytes), '/dev/urandom'], {
      stdio: ['ignore', fd, 'pipe'],
    });
    liveChildren.add(head);
    const code = await new Promise<number | null>((resolve, reject) => {
      head.once('error', reject);
      head.once('exit', resolve);
    });
    liveChildren.delete(head);
    if (code !== 0) throw new Error(`head -c ${sizeBytes} /dev/urandom exited ${code}`);
  } finally {
    closeSync(fd);
  }
  await chmod(file, 0o644);
  return file;
}

// ---------------------------------------------------------------- 2. echo latency

export interface EchoSession {
  /** Types one character and resolves with the milliseconds until its echo arrived. */
  echo(char: string, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * An `ssh -tt` session (in a real pty, node-pty) in which `cat` runs on the
 * asset's tty, so the tty echoes every typed character. `shell` types `cat`
 * at the prompt (the vendor's path: through the command extractor); `exec`
 * runs `ssh -tt … cat` (a pty, but no extractor).
 */
export async function openEchoSession(
  target: SshTarget,
  mode: 'shell' | 'exec',
): Promise<EchoSession> {
  const args = ['-tt', ...sshArgs(target), ...(mode === 'exec' ? ['cat'] : [])];
  const pty = nodePty().spawn(SSH_BIN, args, {
    name: 'xterm-256color',
    cols: 80,
    rows: 24,
    cwd: process.cwd(),
    env: childEnv(),
  });
  livePtys.add(pty);
  let output = '';
  let exited = false;
  let waiter: { char: string; resolve: (at: bigint) => void } | null = null;
  pty.onData((data) => {
    // Timestamp first: the figure is the time until the echo reached this process.
    const at = process.hrtime.bigint();
    if (waiter !== null && data.includes(waiter.char)) {
      const w = waiter;
      waiter = null;
      w.resolve(at);
    }
    output = (output + data).slice(-16_384);
  });
  pty.onExit(() => (exited = true));
  const waitFor = async (text: string, timeoutMs: number): Promise<void> => {
    await waitUntil(
      `${JSON.stringify(text)} (output so far: ${JSON.stringify(output.slice(-300))})`,
      () => output.includes(text) || exited,
      timeoutMs,
    );
    if (!output.includes(text))
      throw new Error(
        `ssh exited before ${JSON.stringify(text)}: ${JSON.stringify(output.slice(-500))}`,
      );
  };
  const close = async (): Promise<void> => {
    pty.write('\x03');
    if (mode === 'shell') {
      await sleep(100);
      pty.write('exit\r');
    }
    await waitUntil('ssh to exit', () => exited, 5_000).catch(() => pty.kill('SIGKILL'));
    livePtys.delete(pty);
  };
  try {
    if (mode === 'shell') {
      await waitFor('asset$ ', 30_000);
      output = '';
      pty.write('cat\r');
      await waitFor('cat\r\n', 10_000);
      await sleep(300); // bash has exec'd cat by now
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    echo: (char, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = null;
          reject(
            new Error(
              `no echo of ${JSON.stringify(char)} within ${timeoutMs} ms; output: ${JSON.stringify(output.slice(-300))}`,
            ),
          );
        }, timeoutMs);
        const t0 = process.hrtime.bigint();
        waiter = {
          char,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(msSince(t0, at));
          },
        };
        pty.write(char);
      }),
    close,
  };
}

/**
 * Echo latency of several paths, sampled round-robin (one keystroke on each
 * path in turn, `gapMs` apart) so that every path sees the same moments of a
 * shared machine's load; one keystroke is in flight at a time.
 */
export async function echoLatencies(
  paths: readonly { target: SshTarget; mode: 'shell' | 'exec' }[],
  samples: number,
  warmup: number,
  gapMs: number,
): Promise<number[][]> {
  const sessions: EchoSession[] = [];
  try {
    for (const p of paths) sessions.push(await openEchoSession(p.target, p.mode));
    const times = paths.map((): number[] => []);
    for (let i = 0; i < warmup + samples; i++) {
      for (const [k, session] of sessions.entries()) {
        const ms = await session.echo('x', i === 0 ? 30_000 : 5_000);
        if (i >= warmup) times[k]?.push(ms);
        await sleep(gapMs);
      }
    }
    return times;
  } finally {
    for (const session of sessions) await session.close();
  }
}

// ---------------------------------------------------------------- 3. memory per idle session

interface IdleClient {
  close(): Promise<void>;
}

async function openIdleSession(target: SshTarget): Promise<IdleClient> {
  // A pipe, not a pty, on this side: -tt still gets the remote shell a pty,
  // and a pipe costs this process (which is also the broker) less to hold.
  const child = spawn(SSH_BIN, ['-tt', ...sshArgs(target)], { stdio: ['pipe', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let seen = '';
  let ready = false;
  child.stderr.on('data', (chunk: Buffer) => (seen += chunk.toString('utf8')));
  child.stdout.on('data', (chunk: Buffer) => {
    if (ready) return;
    seen += chunk.toString('utf8');
    if (seen.includes('asset$ ')) {
      ready = true;
      seen = '';
    }
  });
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exited = false;
  void exit.then(() => (exited = true));
  await waitUntil('an idle session to reach the prompt', () => ready || exited, 60_000);
  if (!ready) throw new Error(`idle ssh session ended before its prompt: ${seen.trim()}`);
  return {
    async close() {
      child.stdin.write('exit\n');
      await Promise.race([exit, sleep(5_000)]);
      if (!exited) child.kill('SIGKILL');
      await exit;
      liveChildren.delete(child);
    },
  };
}

async function openIdleSessions(target: SshTarget, n: number): Promise<IdleClient[]> {
  const clients: IdleClient[] = [];
  try {
    for (let i = 0; i < n; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, n - i) }, () => openIdleSession(target)),
      );
      clients.push(...batch);
    }
    return clients;
  } catch (err) {
    await Promise.all(clients.map((c) => c.close()));
    throw err;
  }
}

function exposedGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

interface Memory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  /** C++ memory tied to JS objects (Buffers included). */
  external: number;
}

const MEMORY_KEYS = ['rss', 'heapTotal', 'heapUsed', 'external'] as const;
const memoryOf = (f: (key: keyof Memory) => number): Memory => ({
  rss: f('rss'),
  heapTotal: f('heapTotal'),
  heapUsed: f('heapUsed'),
  external: f('external'),
});

/**
 * Memory after full collections, once rss has stopped moving: V8 and the
 * allocator hand freed pages back some time after a collection, and a
 * baseline taken before that makes every later delta look smaller.
 */
async function settledMemory(gc: () => void, quietChecks = 1): Promise<Memory> {
  let previous = Number.NaN;
  let quiet = 0;
  for (let i = 0; i < 10 + 5 * quietChecks && quiet < quietChecks; i++) {
    gc();
    await sleep(300 * quietChecks);
    gc();
    const rss = process.memoryUsage().rss;
    quiet = Math.abs(rss - previous) < 256 * 1024 ? quiet + 1 : 0;
    previous = rss;
  }
  const m = process.memoryUsage();
  return memoryOf((key) => m[key]);
}

interface MemoryPoint extends Memory {
  sessions: number;
}

/**
 * Bytes per session: the median of the per-step slopes. A process hands
 * memory back to the OS now and then (V8's memory reducer, malloc trimming),
 * which shows as one outlying step; the median ignores it where a single
 * before/after delta or a least-squares fit would not.
 */
function perSessionSlope(points: readonly MemoryPoint[]): Memory {
  const steps = points.slice(1).map((p, i) => ({ p, q: points[i] ?? p }));
  return memoryOf((key) => {
    const slopes = steps
      .map(({ p, q }) => (p[key] - q[key]) / (p.sessions - q.sessions))
      .sort((x, y) => x - y);
    const mid = slopes.length / 2;
    return Math.round(
      slopes.length % 2 === 1
        ? (slopes[Math.floor(mid)] ?? 0)
        : ((slopes[mid - 1] ?? 0) + (slopes[mid] ?? 0)) / 2,
    );
  });
}

const minus = (a: Memory, b: Memory): Memory => memoryOf((key) => a[key] - b[key]);

/**
 * Opens `n` idle sessions in steps, measuring settled memory after each step.
 * See perSessionSlope for how the figure per session is read off them.
 */
async function memoryCurve(
  target: SshTarget,
  n: number,
  gc: () => void,
  liveSessions: () => number | null,
): Promise<{ points: MemoryPoint[]; perSession: Memory; clients: IdleClient[] }> {
  const step = Math.max(1, Math.ceil(n / 5));
  const points: MemoryPoint[] = [{ sessions: 0, ...(await settledMemory(gc)) }];
  const clients: IdleClient[] = [];
  try {
    while (clients.length < n) {
      clients.push(...(await openIdleSessions(target, Math.min(step, n - clients.length))));
      await waitUntil(
        `${clients.length} live gateway sessions`,
        () => [null, clients.length].includes(liveSessions()),
        30_000,
      );
      // Idle means quiet for a while: long enough for the gateway to put an
      // idle shell's terminal emulator to rest, as it would in production.
      // The control run waits as long, so both are measured alike.
      await sleep(DEFAULT_TERMINAL_REST_AFTER_MS + 1_000);
      points.push({ sessions: clients.length, ...(await settledMemory(gc)) });
      const last = points.at(-1);
      progress(
        `  ${clients.length} sessions: rss ${((last?.rss ?? 0) / MiB).toFixed(1)} MiB, heapUsed ${((last?.heapUsed ?? 0) / MiB).toFixed(1)} MiB`,
      );
    }
  } catch (err) {
    await Promise.all(clients.map((c) => c.close()));
    throw err;
  }
  // The first step carries one-time costs (pools, caches); the slope starts after it.
  const fitted = points.length > 2 ? points.slice(1) : points;
  return { points, perSession: perSessionSlope(fitted), clients };
}

interface IdleMemoryResult {
  control: Memory;
  broker: Memory;
  brokerNet: Memory;
  retainedAfterClose: Memory;
  points: { control: MemoryPoint[]; broker: MemoryPoint[] };
  load: [number, number, number];
}

async function idleMemory(b: Bench, n: number, gc: () => void): Promise<IdleMemoryResult> {
  progress('memory: warming up the broker with 3 sessions');
  for (const c of await openIdleSessions(b.broker, 3)) await c.close();
  await waitUntil('the warm-up sessions to end', () => b.gateway.registry.size === 0, 30_000);
  // Start-up garbage (migrations, route compilation) is handed back to the OS
  // in one go some seconds later; wait for that before any baseline.
  progress('memory: waiting for the process to settle');
  await settledMemory(gc, 4);

  progress(
    `memory: control — ${n} idle sessions straight to sshd (what holding the clients costs this process)`,
  );
  const control = await memoryCurve(b.direct, n, gc, () => null);
  await Promise.all(control.clients.map((c) => c.close()));

  progress(`memory: ${n} idle sessions through the broker`);
  const broker = await memoryCurve(b.broker, n, gc, () => b.gateway.registry.size);
  const loadNow = load();
  await Promise.all(broker.clients.map((c) => c.close()));
  await waitUntil('the gateway sessions to end', () => b.gateway.registry.size === 0, 60_000);
  const after = await settledMemory(gc);
  const start = broker.points[0] ?? after;
  const retained = minus(after, start);
  return {
    control: control.perSession,
    broker: broker.perSession,
    brokerNet: minus(broker.perSession, control.perSession),
    retainedAfterClose: memoryOf((key) => Math.round(retained[key] / n)),
    points: { control: control.points, broker: broker.points },
    load: loadNow,
  };
}

// ---------------------------------------------------------------- diagnostics

/** The recorder and its PostgreSQL sink alone, fed as the gateway feeds it (32 KiB packets, honouring backpressure). */
async function recorderAlone(
  b: Bench,
  bytes: number,
): Promise<{
  bytes: number;
  seconds: number;
  mibPerSecond: number;
  pausedTimes: number;
  cpuSeconds: CpuSeconds;
}> {
  const sessionId = newId('session');
  await insertSession(b.db.pool, {
    id: sessionId,
    grantId: b.ids.grantId,
    userId: b.ids.userId,
    assetId: b.ids.assetId,
    zoneId: b.ids.zoneId,
    connectorId: null,
    protocol: 'ssh',
    clientAddress: '127.0.0.1',
    clientVersion: 'bench-recorder',
    brokerInstance: b.ids.instanceId,
    startedAt: new Date(),
  });
  const recorder = new SessionRecorder({
    sessionId,
    sink: pgChunkSink(b.db.pool),
    clock: systemClock,
    startedAt: new Date(),
  });
  const blocks = Array.from({ length: 64 }, () => randomBytes(32 * 1024));
  const meter = new CpuMeter(b.cpu);
  const t0 = process.hrtime.bigint();
  let paused = 0;
  for (let sent = 0, i = 0; sent < bytes; sent += 32 * 1024, i++) {
    if (!recorder.record(0, 'o', blocks[i % blocks.length] ?? Buffer.alloc(0))) {
      paused += 1;
      await new Promise<void>((resolve) => recorder.once('drain', resolve));
    }
  }
  await recorder.close();
  const seconds = msSince(t0) / 1000;
  await sleep(300);
  return {
    bytes,
    seconds: round(seconds, 3),
    mibPerSecond: round(bytes / MiB / seconds, 1),
    pausedTimes: paused,
    cpuSeconds: meter.stop(),
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Self time of the profiled transfer, by function and by where the code lives. */
function summariseProfile(path: string): {
  byFunction: [string, number][];
  byArea: [string, number][];
  totalMs: number;
} {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  profile.samples.forEach((id, i) =>
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000),
  );
  const area = (url: string, fn: string): string => {
    if (url === '') return fn.startsWith('(') ? fn : '(native / V8 builtins)';
    const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (pkg) return pkg[1] ?? url;
    const own = /\/(packages|services)\/([^/]+)\/src\/(?:([^/]+)\/)?/.exec(url);
    if (own)
      return `${own[1]}/${own[2]}${own[1] === 'services' && own[3] !== undefined ? `/${own[3]}` : ''}`;
    if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] ?? ''}`;
    return basename(url);
  };
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let totalMs = 0;
  for (const [id, ms] of selfMs) {
    const node = nodes.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const fn = functionName || '(anonymous)';
    const where = url === '' ? '' : ` ${basename(url)}:${lineNumber + 1}`;
    byFunction.set(`${fn}${where}`, (byFunction.get(`${fn}${where}`) ?? 0) + ms);
    byArea.set(area(url, fn), (byArea.get(area(url, fn)) ?? 0) + ms);
    totalMs += ms;
  }
  const top = (m: Map<string, number>, n: number): [string, number][] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => [k, round(v, 1)]);
  return { byFunction: top(byFunction, 20), byArea: top(byArea, 15), totalMs: round(totalMs, 1) };
}

/** A CPU profile under test-output/, summarised as two tables (by area, by function). */
export function profileReport(file: string): {
  summary: ReturnType<typeof summariseProfile>;
  title: string;
  text: string;
} {
  const summary = summariseProfile(join(OUTPUT_DIR, file));
  const pct = (ms: number): string => `${((ms / summary.totalMs) * 100).toFixed(1)} %`;
  return {
    summary,
    title: `${(summary.totalMs / 1000).toFixed(1)} s sampled; test-output/${file}`,
    text:
      table(
        ['self time by area', 'ms', 'share'],
        summary.byArea.map(([k, v]) => [k, v.toFixed(0), pct(v)]),
      ) +
      '\n\n' +
      table(
        ['self time by function', 'ms', 'share'],
        summary.byFunction.map(([k, v]) => [k, v.toFixed(0), pct(v)]),
      ),
  };
}

export async function versionOf(file: string, args: string[]): Promise<string> {
  const r = await runProgram(file, args).catch(() => null);
  return (r?.stderr || r?.stdout || '').trim().split('\n')[0] ?? '';
}

export function assetLegCipher(): string {
  // SSH takes the client's first cipher that the server also offers (RFC 4253 §7.1);
  // the broker is the client on this leg, with ssh2's defaults.
  const constants = createRequire(new URL('../services/broker/package.json', import.meta.url))(
    'ssh2/lib/protocol/constants.js',
  ) as { DEFAULT_CIPHER?: string[] };
  return constants.DEFAULT_CIPHER?.[0] ?? 'unknown';
}

/** What the figures were measured on, as both benchmark reports record it. */
export async function machineFacts(b: Bench): Promise<Record<string, unknown>> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '',
    node: process.version,
    openssh: await versionOf(SSH_BIN, ['-V']),
    database: b.db.server,
    ssh2NativeCrypto: nativeCryptoAvailable(),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  mkdirSync(OUTPUT_DIR, { recursive: true });
  const loadAtStart = load();
  progress(`load average at start: ${loadText(loadAtStart)} (${cpus().length} CPUs)`);
  const gc = exposedGc();
  const b = await setUp({ recordingWriter: options.recordingWriter });
  const out: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    command: `pnpm bench:gateway ${process.argv.slice(2).join(' ')}`.trim(),
    machine: await machineFacts(b),
    options: { ...options, phases: [...options.phases] },
    notes: [
      'Broker in this process: memory figures are this process after gc(); the driver holds the ssh clients (see the control row).',
      'Echo latency: time from writing one character into the local pty to its echo arriving back; paths sampled round-robin.',
      'Throughput: wall time of the ssh client from spawn to exit, connection set-up included; CPU seconds per process over the same run (sshd and postgres trees sampled from /proc every 100 ms).',
    ],
    ciphers: {
      vendorLeg: CIPHER,
      direct: CIPHER,
      assetLeg: `${assetLegCipher()} (ssh2 client defaults)`,
    },
    targets: TARGETS,
  };
  const report: string[] = [];
  const section = (title: string, body: string): void => void report.push(`${title}\n${body}\n`);

  if (options.phases.has('memory')) {
    const m = await idleMemory(b, options.sessions, gc);
    const jsBytes = m.brokerNet.heapUsed + m.brokerNet.external;
    out.memory = { sessions: options.sessions, perSessionBytes: m };
    const kb = (n: number): string => (n / 1000).toFixed(1);
    section(
      `Memory per idle interactive session, KB (N=${options.sessions}, opened in 5 steps; median per-step slope of this process's memory after gc; load ${loadText(m.load)})`,
      table(
        ['', ...MEMORY_KEYS],
        (
          [
            ['through broker', m.broker],
            ['control: clients held, direct to sshd', m.control],
            ['broker net (broker − control)', m.brokerNet],
            ['still held after all closed (/ N)', m.retainedAfterClose],
          ] as const
        ).map(([label, mem]) => [label, ...MEMORY_KEYS.map((key) => kb(mem[key]))]),
      ) +
        `\ntarget ≤ ${TARGETS.bytesPerIdleSession / 1000} KB per session — net rss ${kb(m.brokerNet.rss)} KB: ${verdict(m.brokerNet.rss <= TARGETS.bytesPerIdleSession)}; ` +
        `net heapUsed + external ${kb(jsBytes)} KB: ${verdict(jsBytes <= TARGETS.bytesPerIdleSession)}` +
        '\n(rss moves in steps as V8 and malloc take and return pages; heapUsed + external is the steadier figure)',
    );
  }

  if (options.phases.has('latency')) {
    const variants = [
      { label: 'direct to sshd (shell → cat)', target: b.direct, mode: 'shell' },
      { label: 'through broker (shell → cat)', target: b.broker, mode: 'shell' },
      { label: 'through broker (exec cat: no command extractor)', target: b.broker, mode: 'exec' },
    ] as const;
    progress(
      `latency: ${options.samples} samples on each of ${variants.length} paths, round-robin`,
    );
    const times = await echoLatencies(variants, options.samples, options.warmup, options.gapMs);
    const latencyLoad = load();
    const rows = variants.map((v, i): [string, LatencyStats] => [
      v.label,
      latencyStats(times[i] ?? []),
    ]);
    const [direct, shell, exec] = rows.map((r) => r[1]);
    if (direct === undefined || shell === undefined || exec === undefined)
      throw new Error('latency rows missing');
    const added = { p50: round(shell.p50 - direct.p50, 3), p99: round(shell.p99 - direct.p99, 3) };
    out.latency = {
      load: latencyLoad,
      variants: rows.map(([label, stats]) => ({ label, ...stats })),
      addedShell: added,
      addedExec: { p50: round(exec.p50 - direct.p50, 3), p99: round(exec.p99 - direct.p99, 3) },
    };
    section(
      `Keystroke echo latency, ms (${options.samples} samples per path, paths sampled in turn ${options.gapMs} ms apart, ${options.warmup} warm-up discarded; load ${loadText(latencyLoad)})`,
      table(
        ['path', 'p50', 'p90', 'p99', 'max'],
        rows.map(([label, s]) => [
          label,
          s.p50.toFixed(3),
          s.p90.toFixed(3),
          s.p99.toFixed(3),
          s.max.toFixed(3),
        ]),
      ) +
        `\nadded by the broker (shell): p50 ${added.p50.toFixed(3)} ms, p99 ${added.p99.toFixed(3)} ms — target p99 ≤ ${TARGETS.addedEchoP99Ms} ms: ${verdict(added.p99 <= TARGETS.addedEchoP99Ms)}`,
    );
  }

  if (options.phases.has('throughput')) {
    if (options.phases.has('latency') || options.phases.has('memory'))
      await outlastInteractiveWindow();
    progress(
      `throughput: writing ${options.sizeBytes / MiB} MiB of random bytes into the asset's work dir`,
    );
    const file = await makePayload(b.sshd, options.sizeBytes);
    const runs: { direct: TransferRun[]; broker: TransferRun[] } = { direct: [], broker: [] };
    const profiler = options.profile ? new InspectorSession() : null;
    profiler?.connect();
    if (profiler !== null) await profiler.post('Profiler.enable');
    for (let i = 0; i < options.runs; i++) {
      for (const via of ['direct', 'broker'] as const) {
        progress(`throughput: ${via} run ${i + 1}/${options.runs}`);
        const run = await transfer(
          b,
          via,
          file,
          options.sizeBytes,
          via === 'broker' && i === 0 && profiler !== null
            ? { session: profiler, file: BROKER_PROFILE }
            : null,
        );
        progress(
          `  ${run.mibPerSecond} MiB/s in ${run.seconds} s; CPU s: ${JSON.stringify(run.cpuSeconds)}`,
        );
        runs[via].push(run);
      }
    }
    profiler?.disconnect();
    const best = (r: TransferRun[]): TransferRun =>
      r.reduce((a, c) => (c.mibPerSecond > a.mibPerSecond ? c : a));
    const direct = best(runs.direct);
    const broker = best(runs.broker);
    const ratio = broker.mibPerSecond / direct.mibPerSecond;
    out.throughput = {
      sizeBytes: options.sizeBytes,
      runs,
      best: { direct: direct.mibPerSecond, broker: broker.mibPerSecond, ratio: round(ratio, 3) },
    };
    const cpu = (r: TransferRun): string =>
      [r.cpuSeconds.sshClients, r.cpuSeconds.broker, r.cpuSeconds.sshd, r.cpuSeconds.postgres]
        .map((x) => (x === null ? '—' : x.toFixed(1)))
        .join(' / ');
    section(
      `Throughput: ssh … 'cat ${options.sizeBytes / MiB} MiB' > /dev/null, best of ${options.runs} (client legs ${CIPHER}; broker→asset leg ${assetLegCipher()}, ssh2 defaults)`,
      table(
        [
          'path',
          'MiB/s',
          'all runs',
          'best s',
          'CPU s: ssh / broker / sshd+cat / postgres',
          'load 1/5/15',
        ],
        [
          [
            'direct to sshd',
            direct.mibPerSecond.toFixed(1),
            runs.direct.map((r) => r.mibPerSecond.toFixed(1)).join(', '),
            direct.seconds.toFixed(2),
            cpu(direct),
            loadText(direct.load),
          ],
          [
            'through broker (recording on)',
            broker.mibPerSecond.toFixed(1),
            runs.broker.map((r) => r.mibPerSecond.toFixed(1)).join(', '),
            broker.seconds.toFixed(2),
            cpu(broker),
            loadText(broker.load),
          ],
        ],
      ) +
        `\nratio broker/direct ${(ratio * 100).toFixed(1)} % — target ≥ ${TARGETS.throughputRatio * 100} %: ${verdict(ratio >= TARGETS.throughputRatio)}` +
        `\nrecorded output of the best broker run: ${broker.session?.recordedOutputBytes ?? 0} bytes in ${broker.session?.chunks ?? 0} chunks (payload ${options.sizeBytes} + frame headers)` +
        `\nbest broker run, recording writer ${options.recordingWriter}: broker main thread ${broker.cpuSeconds.brokerMainThread.toFixed(2)} CPU-s of ${broker.cpuSeconds.broker.toFixed(2)}; GC pauses ${broker.gc.totalMs.toFixed(0)} ms (${broker.gc.percentOfTime} % of the run, ${broker.gc.pauses} pauses, longest ${broker.gc.maxMs} ms)`,
    );
    if (options.profile) {
      const profile = profileReport(BROKER_PROFILE);
      out.profile = profile.summary;
      section(
        `CPU profile of the broker during through-broker run 1 (${profile.title})`,
        profile.text,
      );
    }
  }

  if (options.phases.has('recorder')) {
    const bytes = Math.min(options.sizeBytes, 256 * MiB);
    progress(`recorder alone: ${bytes / MiB} MiB through SessionRecorder + pgChunkSink`);
    const r = await recorderAlone(b, bytes);
    out.recorderAlone = r;
    section(
      'Diagnostic: recorder + PostgreSQL sink alone (no SSH), 32 KiB records',
      table(
        ['bytes', 'MiB/s', 'paused', 'CPU s: broker / postgres'],
        [
          [
            `${bytes / MiB} MiB`,
            r.mibPerSecond.toFixed(1),
            String(r.pausedTimes),
            `${r.cpuSeconds.broker.toFixed(1)} / ${r.cpuSeconds.postgres?.toFixed(1) ?? '—'}`,
          ],
        ],
      ),
    );
  }

  const loadAtEnd = load();
  out.load = { start: loadAtStart, end: loadAtEnd };
  out.finishedAt = new Date().toISOString();
  const header =
    `Airlock SSH gateway benchmark — ${String(out.startedAt)}\n` +
    `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; Node ${process.version}; ${(out.machine as { openssh: string }).openssh}; PostgreSQL: ${b.db.server}\n` +
    `load average 1/5/15 min: start ${loadText(loadAtStart)}, end ${loadText(loadAtEnd)} (shared machine: figures are noisy)\n`;
  process.stdout.write(`\n${header}\n${report.join('\n')}`);
  const jsonPath = join(OUTPUT_DIR, 'bench-gateway.json');
  writeFileSync(jsonPath, `${JSON.stringify(out, null, 2)}\n`);
  progress(`wrote ${jsonPath}`);
  return 0;
}

/**
 * Runs a benchmark's main with the shared cleanup. Other benchmarks
 * (bench-connector) import this module for its helpers and call this.
 */
export async function runBenchmark(run: () => Promise<number>): Promise<never> {
  let exitCode = 1;
  try {
    exitCode = await run();
  } catch (err) {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    progress('cleaning up');
    await cleanUp();
  }
  // ssh2 keep-alive timers and pool sockets are closed, but do not let a stray handle hold the exit.
  process.exit(exitCode);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  await runBenchmark(main);
