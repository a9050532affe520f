/**
 * What the zone connector costs a vendor, against a real OpenSSH sshd as the
 * asset, with the broker in this process (recording on, as always; built by
 * bench-gateway's setUp, whose helpers this script reuses) and the connector
 * as its own process (`airlock-connector`, as deployed):
 *
 *   latency      keystroke echo latency (`cat` on the asset's tty) direct to
 *                sshd, through the broker, and through broker + connector,
 *                sampled round-robin;
 *   throughput   `ssh … 'cat FILE' > /dev/null` on the same three paths, best
 *                of --runs;
 *   bulk         echo latency (measured from a separate process, scripts/echo-sampler.ts)
 *                while another session pulls an endless `cat /dev/zero` through the same
 *                connector — head-of-line: each stream has its own WebSocket, so its own
 *                TCP flow control — and, for comparison, the same on the broker-only and
 *                direct paths (what the machine itself does under such a load). The echo
 *                session types, so the gateway paces the bulk one as it would in production
 *                (AIRLOCK_BULK_MIBPS_WHILE_INTERACTIVE; --bulk-mibps 0 shows it unpaced);
 *                the direct path has no gateway and is never paced.
 *
 * Prints a table to stdout, progress to stderr, and writes the figures to
 * test-output/bench-connector.json. Reports; asserts nothing.
 *
 *   pnpm bench:connector [--size 256M] [--runs 2] [--samples 500] [--gap-ms 5]
 *                        [--only latency,bulk,throughput] [--profile]
 *                        [--recording-writer thread|inline] [--bulk-mibps N]
 *
 * Beside each under-bulk figure it prints the broker's own event-loop delay
 * (p99), its garbage-collection pauses, and the machine's steal time (CPU the
 * hypervisor gave to other guests): the first two tell the broker's share of a
 * latency tail, the last the host's.
 *
 * Needs what bench:gateway needs (root for the sshd fixture, OpenSSH, node-pty).
 * Uses DATABASE_URL's server (a fresh bench_<random> database) or an embedded
 * PostgreSQL; removes everything it started at the end.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session as InspectorSession } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { SSH_BIN, sshArgs, type SshTarget } from '../packages/test-support/src/ssh/index.js';
import { ConnectorHub } from '../services/broker/src/connectors/hub.js';
import {
  CIPHER,
  defer,
  echoLatencies,
  latencyStats,
  machineFacts,
  liveChildren,
  load,
  loadText,
  makePayload,
  outlastInteractiveWindow,
  MiB,
  OUTPUT_DIR,
  parseRecordingWriter,
  parseSize,
  profileReport,
  progress,
  REPO_ROOT,
  round,
  runBenchmark,
  setUp,
  sleep,
  gcMeter,
  stealMeter,
  table,
  transfer,
  type GcPauses,
  type LatencyStats,
  type RecordingWriter,
  type TransferRun,
} from './bench-gateway.js';

/** Counts its stdin and prints the running total every 100 ms (the bulk transfer's meter). */
const BYTE_COUNTER =
  "let n=0;process.stdin.on('data',(c)=>{n+=c.length});process.stdin.on('end',()=>process.exit(0));setInterval(()=>process.stdout.write(n+'\\n'),100);";

/** Words for `sh -c`, each single-quoted. */
const shellWords = (words: readonly string[]): string =>
  words.map((w) => `'${w.replaceAll("'", "'\\''")}'`).join(' ');

/** The target for keystroke echo while a bulk transfer runs through the same connector. */
const TARGET_P99_UNDER_BULK_MS = 20;
const CONNECTOR_PROFILE = 'bench-connector-broker.cpuprofile';

interface Options {
  sizeBytes: number;
  runs: number;
  samples: number;
  gapMs: number;
  parts: ReadonlySet<Part>;
  /** CPU-profile the broker during the first through-connector transfer. */
  profile: boolean;
  recordingWriter: RecordingWriter;
  /** The gateway's bulk rate while someone types (default: the config's); 0: never paced. */
  bulkMiBps: number | undefined;
}

const PARTS = ['latency', 'bulk', 'throughput'] as const;
type Part = (typeof PARTS)[number];

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string', default: '256M' },
      runs: { type: 'string', default: '2' },
      samples: { type: 'string', default: '500' },
      'gap-ms': { type: 'string', default: '5' },
      profile: { type: 'boolean', default: false },
      'recording-writer': { type: 'string', default: 'thread' },
      'bulk-mibps': { type: 'string' },
      only: { type: 'string', default: PARTS.join(',') },
    },
    strict: true,
  });
  const int = (name: string, text: string, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new Error(`--${name} must be an integer from 1 to ${max}`);
    return n;
  };
  const parts = values.only.split(',').map((p) => p.trim());
  const unknown = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (unknown.length > 0 || parts.length === 0)
    throw new Error(`--only takes a comma-separated list of ${PARTS.join(', ')}`);
  const bulkText = values['bulk-mibps'];
  const bulkMiBps = bulkText === undefined ? undefined : Number(bulkText);
  if (bulkMiBps !== undefined && (!Number.isInteger(bulkMiBps) || bulkMiBps < 0))
    throw new Error('--bulk-mibps must be an integer, 0 or more (0: never paced)');
  return {
    bulkMiBps,
    recordingWriter: parseRecordingWriter(values['recording-writer']),
    profile: values.profile,
    parts: new Set(parts as Part[]),
    sizeBytes: parseSize(values.size),
    runs: int('runs', values.runs, 10),
    // A tty in canonical mode keeps at most 4095 characters of one line.
    samples: int('samples', values.samples, 4000),
    gapMs: int('gap-ms', values['gap-ms'], 1000),
  };
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  mkdirSync(OUTPUT_DIR, { recursive: true });
  const loadAtStart = load();
  progress(`load average at start: ${loadText(loadAtStart)} (${cpus().length} CPUs)`);

  // The broker's HTTP listener carries the connector's WebSockets; its dialer
  // routes zones with connectors through them and the others directly.
  let hub: ConnectorHub | null = null;
  let brokerUrl = '';
  const b = await setUp({
    recordingWriter: options.recordingWriter,
    ...(options.bulkMiBps === undefined ? {} : { bulkMiBpsWhileInteractive: options.bulkMiBps }),
    dialer: async (ctx, app) => {
      await app.listen({ host: '127.0.0.1', port: 0 });
      brokerUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const created = new ConnectorHub(ctx, { heartbeatMs: 5_000 });
      created.attach(app.server);
      defer('close the connector hub', () => created.close());
      hub = created;
      return created.dialer;
    },
  });
  if (hub === null) throw new Error('the connector hub was not created');
  await (hub as ConnectorHub).start(b.gateway.instanceId, brokerUrl);

  progress('a second zone served by a connector, with the same sshd as its asset');
  const expect = <T>(what: string, r: { status: number; body: T }, status: number): T => {
    if (r.status !== status) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const zone = expect(
    'create zone',
    await b.call<{ id: string }>('POST', '/api/v1/zones', b.tokens.admin, {
      name: 'Bench connector zone',
      policy: { requiredApprovals: 1, allowedCapabilities: ['shell', 'exec'] },
    }),
    201,
  );
  expect(
    'approvers',
    await b.call('PUT', `/api/v1/zones/${zone.id}/approvers`, b.tokens.admin, {
      userIds: [b.approverId],
    }),
    200,
  );
  const asset = expect(
    'create asset',
    await b.call<{ id: string }>('POST', '/api/v1/assets', b.tokens.admin, {
      name: 'bench-02',
      zoneId: zone.id,
      host: b.sshd.host,
      port: b.sshd.port,
      protocol: 'ssh',
      login: b.sshd.user.name,
      credential: b.sshd.user.password,
      hostKey: b.sshd.hostPublicKey,
    }),
    201,
  );
  const request = expect(
    'file request',
    await b.call<{ id: string }>('POST', '/api/v1/requests', b.tokens.vendor, {
      assetIds: [asset.id],
      durationMinutes: 120,
      reason: 'connector benchmark',
      capabilities: ['shell', 'exec'],
    }),
    201,
  );
  expect(
    'approve',
    await b.call('POST', `/api/v1/requests/${request.id}/approve`, b.tokens.approver, {}),
    200,
  );
  const connector = expect(
    'create connector',
    await b.call<{ enrollmentToken: string }>('POST', '/api/v1/connectors', b.tokens.admin, {
      name: 'bench-gw',
      zoneId: zone.id,
    }),
    201,
  );

  const connectorDir = await mkdtemp(join(tmpdir(), 'airlock-bench-connector-'));
  defer('remove the connector data dir', () => rm(connectorDir, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(REPO_ROOT, 'services/connector/src/main.ts'),
      '--broker',
      brokerUrl,
      '--data-dir',
      connectorDir,
      '--enroll',
      connector.enrollmentToken,
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, AIRLOCK_CONNECTOR_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  liveChildren.add(child);
  let printed = '';
  child.stdout.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
  for (let waited = 0; !printed.includes('airlock-connector ready'); waited += 50) {
    if (child.exitCode !== null || waited > 60_000)
      throw new Error(`the connector did not start: ${printed}`);
    await sleep(50);
  }
  progress(`connector up (pid ${child.pid}) against ${brokerUrl}`);
  const viaConnector: SshTarget = { ...b.broker, user: 'vera+bench-02' };

  const out: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    command: `pnpm bench:connector ${process.argv.slice(2).join(' ')}`.trim(),
    machine: await machineFacts(b),
    options,
    notes: [
      'Broker in this process, connector as its own process on the same machine, asset sshd on loopback.',
      'Echo latency: from writing one character into the local pty to its echo arriving back; paths sampled round-robin.',
      'Throughput: wall time of the ssh client from spawn to exit (connection set-up included), best of the runs.',
    ],
    cipher: CIPHER,
  };
  const report: string[] = [];
  const section = (title: string, body: string): void => void report.push(`${title}\n${body}\n`);
  const latencyRow = (label: string, s: LatencyStats): string[] => [
    label,
    s.p50.toFixed(3),
    s.p90.toFixed(3),
    s.p99.toFixed(3),
    s.max.toFixed(3),
  ];

  // 1. echo latency, three paths
  if (options.parts.has('latency')) await idleLatency();
  async function idleLatency(): Promise<void> {
    const variants = [
      { label: 'direct to sshd', target: b.direct, mode: 'shell' },
      { label: 'through broker', target: b.broker, mode: 'shell' },
      { label: 'through broker + connector', target: viaConnector, mode: 'shell' },
    ] as const;
    progress(
      `latency: ${options.samples} samples on each of ${variants.length} paths, round-robin`,
    );
    const times = await echoLatencies(variants, options.samples, 20, options.gapMs);
    const latencyLoad = load();
    const latency = variants.map((v, i) => ({ label: v.label, ...latencyStats(times[i] ?? []) }));
    out.latency = { load: latencyLoad, variants: latency };
    section(
      `Keystroke echo latency, ms (${options.samples} samples per path, ${options.gapMs} ms apart; load ${loadText(latencyLoad)})`,
      table(
        ['path', 'p50', 'p90', 'p99', 'max'],
        latency.map((l) => latencyRow(l.label, l)),
      ),
    );
  }

  // 2. echo latency while a bulk transfer runs: through the connector (the figure the issue
  // asks for), and, to tell the connector's share from the machine's, the same on the other
  // paths. The measuring terminal is a process of its own (scripts/echo-sampler.ts), as a
  // vendor's is, so it does not share an event loop with the broker in this process.
  const sampleEcho = async (target: SshTarget): Promise<number[]> => {
    const sampler = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'scripts/echo-sampler.ts'),
        '--target',
        JSON.stringify(target),
        '--samples',
        String(options.samples),
        '--gap-ms',
        String(options.gapMs),
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    liveChildren.add(sampler);
    let printed = '';
    sampler.stdout.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => sampler.once('exit', resolve));
    liveChildren.delete(sampler);
    if (code !== 0) throw new Error(`the echo sampler exited ${code}`);
    return JSON.parse(printed.trim().split('\n').at(-1) ?? '[]') as number[];
  };
  interface EchoRun extends LatencyStats {
    label: string;
    bulkMiBPerSecond: number | null;
    load: number[];
    /** The broker's event-loop delay while the samples ran, ms. */
    brokerLoopDelay: { p50: number; p99: number; max: number };
    /** The broker's garbage-collection pauses while the samples ran. */
    brokerGc: GcPauses;
    /** Steal time while the samples ran, % of the machine's CPU time. */
    stealPercent: number;
  }
  /** Echo samples, with what the broker's loop and the hypervisor did meanwhile. */
  const measuredEcho = async (
    echoTarget: SshTarget,
  ): Promise<{
    samples: number[];
    brokerLoopDelay: EchoRun['brokerLoopDelay'];
    brokerGc: GcPauses;
    stealPercent: number;
  }> => {
    const loop = monitorEventLoopDelay({ resolution: 1 });
    const gc = gcMeter();
    const steal = stealMeter();
    loop.enable();
    try {
      const samples = await sampleEcho(echoTarget);
      const ms = (ns: number): number => round(ns / 1e6, 1);
      return {
        samples,
        stealPercent: steal(),
        brokerLoopDelay: {
          p50: ms(loop.percentile(50)),
          p99: ms(loop.percentile(99)),
          max: ms(loop.max),
        },
        brokerGc: gc.stop(),
      };
    } finally {
      loop.disable();
    }
  };
  const echoRun = async (
    label: string,
    bulkTarget: SshTarget | null,
    echoTarget: SshTarget,
  ): Promise<EchoRun> => {
    progress(`echo: ${label}`);
    if (bulkTarget === null) {
      const { samples, ...meanwhile } = await measuredEcho(echoTarget);
      return {
        label,
        bulkMiBPerSecond: null,
        ...latencyStats(samples),
        ...meanwhile,
        load: load(),
      };
    }
    // The bulk client's output is counted by a process of its own: read here,
    // 100 MiB/s of pipe reads would load this process — which is the broker —
    // and the echo would measure the benchmark instead of the gateway.
    const pipeline = `${shellWords([SSH_BIN, ...sshArgs(bulkTarget), 'cat /dev/zero'])} | ${shellWords([process.execPath, '-e', BYTE_COUNTER])}`;
    const bulk = spawn('sh', ['-c', pipeline], {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    liveChildren.add(bulk);
    let bulkBytes = 0;
    bulk.stdout.on('data', (chunk: Buffer) => {
      const last = Number(chunk.toString('utf8').trim().split('\n').at(-1));
      if (Number.isFinite(last)) bulkBytes = last;
    });
    try {
      for (let waited = 0; bulkBytes < 16 * MiB; waited += 20) {
        if (bulk.exitCode !== null || waited > 60_000)
          throw new Error('the bulk transfer did not start');
        await sleep(20);
      }
      const start = { bytes: bulkBytes, at: process.hrtime.bigint() };
      const { samples, ...meanwhile } = await measuredEcho(echoTarget);
      const seconds = Number(process.hrtime.bigint() - start.at) / 1e9;
      if (bulk.exitCode !== null) throw new Error('the bulk transfer ended during the samples');
      return {
        label,
        bulkMiBPerSecond: round((bulkBytes - start.bytes) / MiB / seconds, 1),
        load: load(),
        ...latencyStats(samples),
        ...meanwhile,
      };
    } finally {
      // The whole pipeline: sh, ssh and the counter share the process group.
      if (bulk.pid !== undefined) {
        try {
          process.kill(-bulk.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      liveChildren.delete(bulk);
      await sleep(500); // the bulk session ends and its recording is sealed
    }
  };
  if (options.parts.has('bulk')) await underBulk();
  async function underBulk(): Promise<void> {
    const echoRuns = [
      await echoRun('through broker + connector, idle', null, viaConnector),
      await echoRun(
        'through broker + connector, bulk through the same connector',
        viaConnector,
        viaConnector,
      ),
      // The same load on the broker without touching the connector: what is left is the
      // connector's own share of the figure above.
      await echoRun(
        'through broker + connector, bulk through broker (not the connector)',
        b.broker,
        viaConnector,
      ),
      await echoRun('through broker, bulk through broker (no connector)', b.broker, b.broker),
      await echoRun('direct to sshd, bulk direct to sshd (the machine alone)', b.direct, b.direct),
    ];
    const viaConnectorUnderBulk = echoRuns[1];
    if (viaConnectorUnderBulk === undefined) throw new Error('no figures');
    const pacedAt = options.bulkMiBps ?? b.ctx.config.bulkMiBpsWhileInteractive;
    const pacing =
      pacedAt === 0
        ? 'bulk never paced'
        : `the gateway paces bulk channels to ${pacedAt} MiB/s while someone types, as deployed`;
    out.bulk = { pacedMiBps: pacedAt, runs: echoRuns };
    section(
      `Echo latency measured from a separate process, while another session pulls cat /dev/zero (endless) on the same path, ms (${options.samples} samples each; ${pacing})`,
      table(
        [
          'echo path',
          'p50',
          'p90',
          'p99',
          'max',
          'bulk MiB/s',
          'broker loop p99',
          'GC max ms',
          'GC % of time',
          'steal %',
          'load',
        ],
        echoRuns.map((r) => [
          ...latencyRow(r.label, r),
          r.bulkMiBPerSecond === null ? '—' : r.bulkMiBPerSecond.toFixed(1),
          r.brokerLoopDelay.p99.toFixed(1),
          r.brokerGc.maxMs.toFixed(1),
          r.brokerGc.percentOfTime.toFixed(1),
          r.stealPercent.toFixed(1),
          loadText(r.load),
        ]),
      ) +
        `\ntarget p99 < ${TARGET_P99_UNDER_BULK_MS} ms through the connector while the bulk transfer runs: ${viaConnectorUnderBulk.p99 < TARGET_P99_UNDER_BULK_MS ? 'meets target' : 'MISSES target'}`,
    );
  }

  // 3. throughput, three paths
  if (options.parts.has('throughput')) await throughput();
  async function throughput(): Promise<void> {
    if (options.parts.has('latency') || options.parts.has('bulk')) await outlastInteractiveWindow();
    progress(`throughput: writing ${options.sizeBytes / MiB} MiB of random bytes on the asset`);
    const file = await makePayload(b.sshd, options.sizeBytes);
    const paths = [
      { label: 'direct to sshd', via: 'direct', target: undefined },
      { label: 'through broker', via: 'broker', target: undefined },
      { label: 'through broker + connector', via: 'broker', target: viaConnector },
    ] as const;
    const runs = paths.map((): TransferRun[] => []);
    const profiler = options.profile ? new InspectorSession() : null;
    profiler?.connect();
    if (profiler !== null) await profiler.post('Profiler.enable');
    for (let i = 0; i < options.runs; i++) {
      for (const [k, p] of paths.entries()) {
        progress(`throughput: ${p.label}, run ${i + 1}/${options.runs}`);
        const profile =
          profiler !== null && p.target !== undefined && i === 0
            ? { session: profiler, file: CONNECTOR_PROFILE }
            : null;
        const run = await transfer(b, p.via, file, options.sizeBytes, profile, p.target);
        progress(`  ${run.mibPerSecond} MiB/s in ${run.seconds} s`);
        runs[k]?.push(run);
      }
    }
    const best = runs.map((r) => r.reduce((a, c) => (c.mibPerSecond > a.mibPerSecond ? c : a)));
    const directBest = best[0]?.mibPerSecond ?? NaN;
    out.throughput = paths.map((p, k) => ({ label: p.label, runs: runs[k], best: best[k] }));
    section(
      `Throughput, ssh 'cat ${options.sizeBytes / MiB} MiB' > /dev/null (best of ${options.runs}; ${CIPHER} on the client legs)`,
      table(
        ['path', 'MiB/s', 'seconds', 'vs direct', 'load'],
        paths.map((p, k) => [
          p.label,
          (best[k]?.mibPerSecond ?? NaN).toFixed(1),
          (best[k]?.seconds ?? NaN).toFixed(2),
          `${round(((best[k]?.mibPerSecond ?? NaN) / directBest) * 100, 0)} %`,
          loadText(best[k]?.load ?? [NaN, NaN, NaN]),
        ]),
      ),
    );
    if (profiler !== null) {
      profiler.disconnect();
      const profile = profileReport(CONNECTOR_PROFILE);
      out.profile = profile.summary;
      section(
        `CPU profile of the broker during through-broker-and-connector run 1 (${profile.title})`,
        profile.text,
      );
    }
  }

  const loadAtEnd = load();
  out.load = { start: loadAtStart, end: loadAtEnd };
  out.finishedAt = new Date().toISOString();
  const header =
    `Airlock zone connector benchmark — ${String(out.startedAt)}\n` +
    `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; Node ${process.version}; PostgreSQL: ${b.db.server}\n` +
    `load average 1/5/15 min: start ${loadText(loadAtStart)}, end ${loadText(loadAtEnd)} (shared machine: figures are noisy)\n`;
  process.stdout.write(`\n${header}\n${report.join('\n')}`);
  const jsonPath = join(OUTPUT_DIR, 'bench-connector.json');
  writeFileSync(jsonPath, `${JSON.stringify(out, null, 2)}\n`);
  progress(`wrote ${jsonPath}`);
  return 0;
}

await runBenchmark(main);
