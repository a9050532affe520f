import type { JsonValue } from '@airlock/audit';
import { withTransaction } from '@airlock/db';
import { MINUTE_MS, newId, type Capability } from '@airlock/domain';
import { SessionRecorder, extentToSeal, type ChunkKind, type ChunkSink } from '@airlock/recording';
import type {
  Client,
  Connection,
  PseudoTtyInfo,
  ServerChannel,
  Session,
  TcpipRequestInfo,
} from 'ssh2';
import type { Duplex } from 'node:stream';
import { audit } from '../audit.js';
import type { BrokerContext } from '../context.js';
import type { AssetRecord } from '../features/assets/repository.js';
import { getZone } from '../features/zones/repository.js';
import type { GrantRecord } from '../features/grants/repository.js';
import {
  insertCommand,
  insertSession,
  type CommandKind,
  type EndReason,
} from '../features/sessions/repository.js';
import type { UserRecord } from '../features/users/repository.js';
import type { GatewayIdentity } from './authenticator.js';
import { CommandRules, type RuleVerdict } from './command-rules.js';
import { ChannelFlow, type Pausable } from './fair-reads.js';
import type { BulkPacer } from './pacing.js';
import { endReasonText, noticeBytes } from './notices.js';
import { writeSessionEnd, type SessionEndRecord } from './session-end.js';
import { ShellSplice } from './shell-splice.js';
import { SftpSplice } from './sftp-splice.js';
import {
  AssetConnectionError,
  connectToAsset,
  type AssetDialer,
  type DialContext,
} from './upstream.js';
import {
  vendorWritable,
  type Drainable,
  type VendorChannel,
  type VendorConnection,
} from './vendor-channel.js';

export interface GatewayDeps {
  readonly ctx: BrokerContext;
  readonly dialer: AssetDialer;
  /** Where every session's recording is written (one for the whole gateway). */
  readonly recordingSink: ChunkSink;
  /** Paces bulk channels while someone types (one for the whole gateway). */
  readonly pacer: BulkPacer;
  readonly instanceId: string;
  /** How long live sessions stay up, warned, after the audit store fails. */
  readonly auditFailureGraceMs: number;
  /** How long a shell must be quiet before its terminal emulator is put to rest (ShellSplice.rest). */
  readonly terminalRestAfterMs: number;
  onEnded(session: LiveSession): void;
  /** Called when the final session record could not be written: kept and retried later. */
  deferEnd(end: SessionEndRecord): Promise<void>;
}

type AssetIdentity = Extract<GatewayIdentity, { kind: 'asset' }>;

export const WARNING_MINUTES = [5, 1] as const;

/** A channel the session is carrying, so notices and shutdown reach it. */
interface CarriedChannel {
  readonly id: number;
  readonly channel: VendorChannel;
  /** A terminal the vendor reads: notices are written into it. */
  readonly interactive: boolean;
  readonly carrier: ChannelCarrier;
}

/** What carries a channel's bytes (a splice, a forward). */
interface ChannelCarrier {
  stop(): void;
  /** Called on every supervisor pass: lets an idle channel give up memory it can rebuild. */
  rest?(nowMs: number): void;
}

/** What a carried channel just passed through the pipeline (see LiveSession.applyBackpressure). */
export interface PassedBytes {
  readonly bytes: number;
  /** false: the recorder is full (the bytes are recorded; more must wait for its drain). */
  readonly recorded: boolean;
  /** The vendor's (or asset's) side when its write returned false. */
  readonly congested: Drainable | null;
  /** A bulk channel (exec, SFTP, forwarded port), paced while someone types. */
  readonly bulk: boolean;
}

/**
 * One vendor connection under a grant. Owns the onward connection to the
 * asset, the recording, the command audit and every channel; ends exactly
 * once, with a reason, however it ends.
 */
export class LiveSession {
  readonly id = newId('session');
  readonly user: UserRecord;
  readonly asset: AssetRecord;
  readonly grant: GrantRecord;
  readonly startedAt: Date;
  readonly recorder: SessionRecorder;
  #rules: CommandRules = new CommandRules([]);
  #idleTimeoutMs = 30 * MINUTE_MS;
  #upstream: Promise<Client> | null = null;
  readonly #channels = new Map<number, CarriedChannel>();
  readonly #flows = new WeakMap<Pausable, ChannelFlow>();
  #nextChannelId = 0;
  #ending: Promise<void> | null = null;
  #failing = false;
  readonly #warned = new Set<number>();
  #lastActivityMs: number;
  bytesFromClient = 0;
  bytesToClient = 0;

  constructor(
    private readonly deps: GatewayDeps,
    identity: Pick<AssetIdentity, 'user' | 'asset' | 'grant'>,
    private readonly connection: VendorConnection,
    private readonly client: { ip: string; version: string | null; protocol?: 'ssh' | 'web' },
  ) {
    this.user = identity.user;
    this.asset = identity.asset;
    this.grant = identity.grant;
    this.startedAt = deps.ctx.clock.now();
    this.#lastActivityMs = this.startedAt.getTime();
    this.recorder = new SessionRecorder({
      sessionId: this.id,
      sink: deps.recordingSink,
      clock: deps.ctx.clock,
      startedAt: this.startedAt,
    });
    this.recorder.on('error', (err: unknown) => this.failClosed(err));
  }

  get ctx(): BrokerContext {
    return this.deps.ctx;
  }

  get terminalRestAfterMs(): number {
    return this.deps.terminalRestAfterMs;
  }

  get ended(): boolean {
    return this.#ending !== null;
  }

  #started: Promise<void> | null = null;

  /** Write-ahead for the session itself: no row and no audit event, no session. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  /** Waits for the session record; tells the vendor and closes the channel if it could not be written. */
  async #ready(channel: VendorChannel): Promise<boolean> {
    try {
      await this.start();
      return !this.ended && !this.#failing;
    } catch {
      channel.stderr.write(
        noticeBytes('The audit store is unavailable: no session can start now.'),
      );
      channel.exit(255);
      channel.end();
      return false;
    }
  }

  async #start(): Promise<void> {
    const zone = await getZone(this.ctx.pool, this.asset.zoneId);
    this.#rules = new CommandRules(zone.policy.commandRules);
    this.#idleTimeoutMs = zone.policy.idleTimeoutMinutes * MINUTE_MS;
    await withTransaction(this.ctx.pool, async (client) => {
      await insertSession(client, {
        id: this.id,
        grantId: this.grant.id,
        userId: this.user.id,
        assetId: this.asset.id,
        zoneId: this.asset.zoneId,
        connectorId: null,
        protocol: this.client.protocol ?? 'ssh',
        clientAddress: this.client.ip,
        clientVersion: this.client.version,
        brokerInstance: this.deps.instanceId,
        startedAt: this.startedAt,
      });
      await audit(client, this.ctx, {
        type: 'session.start',
        actor: { kind: 'user', id: this.user.id, ip: this.client.ip },
        subjectId: this.id,
        data: {
          grantId: this.grant.id,
          assetId: this.asset.id,
          asset: this.asset.name,
          clientVersion: this.client.version,
        },
      });
    });
  }

  /** Carries what an SSH client asks for on its connection. */
  attach(connection: Connection): void {
    connection.on('session', (accept) => this.#onSession(accept()));
    connection.on('tcpip', (accept, reject, info) =>
      this.#guard(this.#onDirectTcpip(accept, reject, info)),
    );
    connection.on('request', (_accept, reject, name) => {
      // Remote forwarding and other global requests are not offered.
      if (name === 'tcpip-forward')
        void this.#refuseChannel('remote_forward', {}).then(() => reject?.());
      else reject?.();
    });
    connection.on('close', () => void this.end('client_exit'));
    connection.on('error', (err) =>
      this.ctx.log.debug({ err, sessionId: this.id }, 'ssh client connection error'),
    );
  }

  /**
   * The console's browser terminal: the same path as an SSH `shell` request
   * with a pty (grant capability, upstream, splice, recording, rules). Returns
   * how to pass on the browser's resizes (SSH window-change).
   */
  openWebShell(
    channel: VendorChannel,
    size: { cols: number; rows: number },
  ): { resize(cols: number, rows: number): void } {
    const current: { splice: ShellSplice | null } = { splice: null };
    if (!this.can('shell')) {
      void this.#refuseChannel('shell', {}).then(() => {
        channel.stderr.write(noticeBytes('Your grant does not include an interactive shell.'));
        channel.exit(255);
        channel.end();
        void this.end('client_exit');
      });
    } else {
      const pty: PseudoTtyInfo = {
        term: 'xterm-256color',
        cols: size.cols,
        rows: size.rows,
        width: 0,
        height: 0,
        modes: {},
      };
      this.#guard(this.#openShell(() => channel, pty, current));
    }
    return { resize: (cols, rows) => current.splice?.resize(cols, rows, 0, 0) };
  }

  can(capability: Capability): boolean {
    return this.grant.capabilities.includes(capability);
  }

  offsetMs(): number {
    return Math.max(0, this.ctx.clock.now().getTime() - this.startedAt.getTime());
  }

  touch(): void {
    this.#lastActivityMs = this.ctx.clock.now().getTime();
  }

  /** What every dial of this session tells the dialer (and, through a connector, the zone). */
  #dialContext(): DialContext {
    return {
      sessionId: this.id,
      grant: {
        id: this.grant.id,
        userId: this.user.id,
        notBefore: this.grant.notBefore,
        notAfter: this.grant.notAfter,
      },
      // Nothing is resumed: the vendor reconnects, under a grant that must still be valid.
      onConnectorLost: (detail) => void this.end('connector_lost', detail),
    };
  }

  /** The onward SSH connection, opened on first use and shared by all channels. */
  upstream(): Promise<Client> {
    this.#upstream ??= connectToAsset(
      this.ctx,
      this.asset,
      this.deps.dialer,
      this.#dialContext(),
    ).then(
      (client) => {
        client.on(
          'close',
          () => void this.end('asset_unreachable', 'the asset closed the connection'),
        );
        client.on('error', (err) =>
          this.ctx.log.warn({ err: err.message, sessionId: this.id }, 'asset connection error'),
        );
        return client;
      },
      async (err: unknown) => {
        const reason = err instanceof AssetConnectionError ? err.reason : 'unreachable';
        await this.#auditEvent('session.asset_refused', 'failure', {
          reason,
          asset: this.asset.name,
        });
        throw err;
      },
    );
    return this.#upstream;
  }

  /**
   * The session may have ended, or the vendor gone, while the asset was being
   * reached: opening a channel then would throw inside ssh2 (and an unhandled
   * throw would take every session on this replica down with it).
   */
  /** A channel that fails to open ends the session, never the process. */
  #guard(opening: Promise<void>): void {
    opening.catch((err: unknown) => {
      this.ctx.log.warn({ err, sessionId: this.id }, 'a channel could not be opened');
      void this.end('error', 'a channel could not be opened');
    });
  }

  #stillOpen(channel: VendorChannel): boolean {
    if (!this.ended && !this.#failing) return true;
    try {
      channel.close();
    } catch {
      // already closed
    }
    return false;
  }

  #registerChannel(channel: VendorChannel, interactive: boolean, carrier: ChannelCarrier): number {
    const id = this.#nextChannelId++;
    this.#channels.set(id, { id, channel, interactive, carrier });
    channel.once('close', () => this.#channels.delete(id));
    const failed = (err: Error): void => this.channelFailed(channel, err);
    channel.on('error', failed);
    channel.stderr.on?.('error', failed);
    return id;
  }

  /**
   * A stream of one carried channel failed (a write that raced its end, a
   * reset): that channel is closed. Unhandled, the error would end the broker
   * process, and every session on it.
   */
  channelFailed(channel: VendorChannel, err: Error): void {
    this.ctx.log.warn({ err, sessionId: this.id }, 'a carried channel failed; closed');
    try {
      channel.close();
    } catch {
      // already closed
    }
  }

  #onSession(session: Session): void {
    let pty: PseudoTtyInfo | null = null;
    const current: { splice: ShellSplice | null } = { splice: null };
    session.on('pty', (accept, _reject, info) => {
      pty = info;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (pty !== null)
        pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      current.splice?.resize(info.cols, info.rows, info.width, info.height);
      accept?.();
    });
    session.on('signal', (accept, _reject, info) => {
      current.splice?.signal(info.name);
      accept?.();
    });
    session.on('env', (_accept, reject) => reject?.());
    session.on(
      'auth-agent',
      (_accept, reject) => void this.#refuseChannel('agent_forwarding', {}).then(() => reject?.()),
    );
    session.on(
      'x11',
      (_accept, reject) => void this.#refuseChannel('x11_forwarding', {}).then(() => reject?.()),
    );
    session.on('shell', (accept, reject) => {
      if (!this.can('shell')) {
        void this.#refuseChannel('shell', {}).then(() => reject?.());
        return;
      }
      this.#guard(this.#openShell(accept, pty, current));
    });
    session.on('exec', (accept, reject, info) => {
      if (!this.can('exec')) {
        void this.#refuseChannel('exec', { command: info.command.slice(0, 1000) }).then(() =>
          reject?.(),
        );
        return;
      }
      this.#guard(this.#openExec(accept, info.command, pty, current));
    });
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp' || !this.can('sftp')) {
        void this.#refuseChannel('subsystem', { name: info.name.slice(0, 100) }).then(() =>
          reject?.(),
        );
        return;
      }
      this.#guard(this.#openSftp(accept));
    });
  }

  async #withUpstream(channel: VendorChannel): Promise<Client | null> {
    if (!(await this.#ready(channel))) return null;
    try {
      return await this.upstream();
    } catch (err) {
      const detail =
        err instanceof AssetConnectionError ? err.message : 'the asset could not be reached';
      channel.stderr.write(noticeBytes(`Cannot reach ${this.asset.name}: ${detail}`));
      channel.exit(255);
      channel.end();
      void this.end('asset_unreachable', detail);
      return null;
    }
  }

  async #openShell(
    accept: () => VendorChannel,
    pty: PseudoTtyInfo | null,
    current: { splice: ShellSplice | null },
  ): Promise<void> {
    const channel = accept();
    const upstream = await this.#withUpstream(channel);
    if (upstream === null || !this.#stillOpen(channel)) return;
    upstream.shell(
      pty === null
        ? false
        : {
            term: pty.term,
            cols: pty.cols,
            rows: pty.rows,
            width: pty.width,
            height: pty.height,
            modes: pty.modes,
          },
      (err, stream) => {
        if (err !== undefined && err !== null) {
          channel.stderr.write(noticeBytes(`The asset refused a shell: ${err.message}`));
          channel.exit(255);
          channel.end();
          return;
        }
        const splice = new ShellSplice(this, channel, stream, pty, 'shell');
        current.splice = splice;
        const id = this.#registerChannel(channel, pty !== null, splice);
        splice.start(id);
      },
    );
  }

  async #openExec(
    accept: () => ServerChannel,
    command: string,
    pty: PseudoTtyInfo | null,
    current: { splice: ShellSplice | null },
  ): Promise<void> {
    const channel = accept();
    if (!(await this.#ready(channel))) return;
    // Write-ahead: the exec request is a command, durable before it reaches the asset.
    const verdict = await this.recordCommand({
      channel: -1,
      kind: command.startsWith('scp ') ? 'scp' : 'exec',
      text: command,
    });
    if (verdict === null || verdict.outcome === 'blocked') {
      const why =
        verdict?.rule?.description ?? verdict?.rule?.pattern ?? 'the audit store is unavailable';
      channel.stderr.write(noticeBytes(`Command blocked: ${why}`));
      channel.exit(126);
      channel.end();
      return;
    }
    const upstream = await this.#withUpstream(channel);
    if (upstream === null || !this.#stillOpen(channel)) return;
    const options =
      pty === null
        ? {}
        : {
            pty: {
              term: pty.term,
              cols: pty.cols,
              rows: pty.rows,
              width: pty.width,
              height: pty.height,
              modes: pty.modes,
            },
          };
    upstream.exec(command, options, (err, stream) => {
      if (err !== undefined && err !== null) {
        channel.stderr.write(noticeBytes(`The asset refused the command: ${err.message}`));
        channel.exit(255);
        channel.end();
        return;
      }
      const splice = new ShellSplice(this, channel, stream, pty, 'exec', command);
      current.splice = splice;
      const id = this.#registerChannel(channel, false, splice);
      splice.start(id);
    });
  }

  async #openSftp(accept: () => ServerChannel): Promise<void> {
    const channel = accept();
    const upstream = await this.#withUpstream(channel);
    if (upstream === null || !this.#stillOpen(channel)) return;
    upstream.subsys('sftp', (err, stream) => {
      if (err !== undefined && err !== null) {
        channel.exit(255);
        channel.end();
        return;
      }
      const splice = new SftpSplice(this, channel, stream);
      const id = this.#registerChannel(channel, false, splice);
      splice.start(id);
    });
  }

  /** `ssh -L`: only to the asset itself and only to ports the asset lists. */
  async #onDirectTcpip(
    accept: () => ServerChannel,
    reject: () => void,
    info: TcpipRequestInfo,
  ): Promise<void> {
    try {
      await this.start();
    } catch {
      reject();
      return;
    }
    const target = info.destIP.toLowerCase();
    const toAsset = target === this.asset.name || target === this.asset.host.toLowerCase();
    if (!this.can('forward') || !toAsset || !this.asset.forwardPorts.includes(info.destPort)) {
      await this.#refuseChannel('forward', {
        destination: `${info.destIP.slice(0, 253)}:${info.destPort}`,
      });
      reject();
      return;
    }
    const verdict = await this.recordCommand({
      channel: -1,
      kind: 'forward',
      text: `forward ${this.asset.name}:${info.destPort}`,
      details: { port: info.destPort },
    });
    if (verdict === null) {
      reject();
      return;
    }
    let socket: Duplex;
    try {
      socket = await this.deps.dialer.dial(this.asset, info.destPort, this.#dialContext());
    } catch (err) {
      reject();
      await this.#auditEvent('session.asset_refused', 'failure', {
        reason: 'unreachable',
        port: info.destPort,
        detail: (err as Error).message,
      });
      return;
    }
    const channel = accept();
    const id = this.#registerChannel(channel, false, {
      stop: () => {
        socket.destroy();
        channel.close();
      },
    });
    this.pipeRecorded(socket, channel, id, 'o');
    this.pipeRecorded(channel, socket, id, 'i');
    // Ended, not closed: ssh2 closes the channel once the vendor's window has
    // taken everything the asset sent (see relayChannelEnd). An error aborts.
    socket.once('close', () => channel.end());
    socket.on('error', (err) => this.channelFailed(channel, err));
    channel.once('close', () => socket.destroy());
  }

  /**
   * Copies one direction, recording every byte first. Backpressure: when the
   * recorder or the destination is full, the source is paused — bytes wait,
   * they are never dropped or sent unrecorded.
   */
  pipeRecorded(from: Duplex, to: Duplex, channelId: number, kind: ChunkKind): void {
    from.on('data', (data: Buffer) => {
      if (!this.carriesOutput) {
        from.pause();
        return;
      }
      this.count(kind, data.length);
      const recorded = this.recorder.record(channelId, kind, data);
      const written = to.write(data);
      this.applyBackpressure(from, {
        bytes: data.length,
        recorded,
        congested: written ? null : to,
        bulk: true,
      });
    });
    from.once('end', () => to.end());
  }

  count(kind: ChunkKind, bytes: number): void {
    if (kind === 'i') {
      this.bytesFromClient += bytes;
      this.touch();
    } else if (kind === 'o') {
      this.bytesToClient += bytes;
    }
  }

  /**
   * Holds `source` after it emitted `passed.bytes`: until the recorder took
   * them (`recorded` false: until it drains) and the vendor's side did
   * (`congested` drains), for the rest of the turn once it used its share
   * (ChannelFlow), and, for a bulk channel, as long as pacing says (BulkPacer).
   */
  applyBackpressure(source: Pausable, passed: PassedBytes): void {
    let flow = this.#flows.get(source);
    if (flow === undefined) {
      flow = new ChannelFlow(source, () => !this.#failing && !this.ended);
      this.#flows.set(source, flow);
    }
    const waitFor: Drainable[] = [];
    if (!passed.recorded) waitFor.push(this.recorder);
    if (passed.congested !== null) waitFor.push(passed.congested);
    flow.passed(passed.bytes, waitFor, passed.bulk ? this.paceBulk(passed.bytes) : 0);
  }

  /** A bulk channel passed `bytes`: how long it must wait now, ms (see BulkPacer). */
  paceBulk(bytes: number): number {
    const holdMs = this.deps.pacer.delayAfter(bytes);
    if (holdMs > 0) this.ctx.metrics.bulkPacedSeconds.inc(holdMs / 1000);
    return holdMs;
  }

  /** An interactive channel had input: bulk channels are paced for a while (see BulkPacer). */
  noteKeystroke(): void {
    this.deps.pacer.noteKeystroke();
  }

  /**
   * Write-ahead command audit: the command row and its audit event commit
   * before the caller forwards anything. Returns null when the audit store
   * failed (the caller must not forward; the session fails closed).
   */
  async recordCommand(c: {
    channel: number;
    kind: CommandKind;
    text: string;
    details?: Record<string, JsonValue>;
  }): Promise<RuleVerdict | null> {
    const verdict =
      c.kind === 'shell' || c.kind === 'exec' || c.kind === 'scp'
        ? this.#rules.judge(c.text)
        : { outcome: 'forwarded' as const, rule: null };
    const now = this.ctx.clock.now();
    const commandId = newId('command');
    try {
      await withTransaction(this.ctx.pool, async (client) => {
        const event = await audit(client, this.ctx, {
          type:
            verdict.outcome === 'blocked'
              ? 'session.command_blocked'
              : verdict.outcome === 'alerted'
                ? 'session.command_alert'
                : 'session.command',
          actor: { kind: 'user', id: this.user.id, ip: this.client.ip },
          subjectId: this.id,
          outcome: verdict.outcome === 'blocked' ? 'failure' : 'success',
          data: {
            commandId,
            kind: c.kind,
            command: c.text,
            asset: this.asset.name,
            rule: verdict.rule?.pattern ?? null,
            ...(c.details ?? {}),
          },
        });
        await insertCommand(client, {
          id: commandId,
          sessionId: this.id,
          userId: this.user.id,
          assetId: this.asset.id,
          kind: c.kind,
          command: c.text,
          occurredAt: now,
          offsetMs: this.offsetMs(),
          outcome: verdict.outcome,
          rule: verdict.rule?.pattern ?? null,
          details: c.details ?? {},
          auditSeq: event.seq,
        });
      });
    } catch (err) {
      this.failClosed(err);
      return null;
    }
    if (verdict.outcome !== 'forwarded')
      this.recorder.record(
        c.channel < 0 ? 0 : c.channel,
        'm',
        Buffer.from(`${verdict.outcome}: ${c.text}`),
      );
    return verdict;
  }

  /**
   * Writes a notice into every terminal the vendor reads, and records it as
   * they saw it. Returns how many terminals it reached.
   */
  notice(text: string): number {
    const bytes = noticeBytes(text);
    let reached = 0;
    for (const carried of this.#channels.values()) {
      // A shell whose end is on its way to the vendor is past warnings.
      if (!carried.interactive || !vendorWritable(carried.channel)) continue;
      carried.channel.write(bytes);
      reached += 1;
      if (!this.#failing) {
        this.recorder.record(carried.id, 'o', bytes);
        this.recorder.record(carried.id, 'm', Buffer.from(text));
      }
    }
    return reached;
  }

  /** Called by the registry's supervisor: expiry warnings, expiry, idle timeout. */
  tick(now: Date): void {
    if (this.ended) return;
    const left = this.grant.notAfter.getTime() - now.getTime();
    if (left <= 0) {
      void this.end('expired');
      return;
    }
    const passed = WARNING_MINUTES.filter((m) => left <= m * MINUTE_MS);
    if (passed.some((m) => !this.#warned.has(m))) {
      // Several thresholds may pass at once for a short window: warn once, with the real time left.
      const seconds = Math.ceil(left / 1000);
      const reached = this.notice(
        `Access to ${this.asset.name} ends in ${seconds >= 90 ? `${Math.round(seconds / 60)} minutes` : `${seconds} seconds`} (at ${this.grant.notAfter.toISOString()}). Save your work.`,
      );
      // A warning counts once a terminal showed it, not while the shell is still opening.
      if (reached > 0) passed.forEach((m) => this.#warned.add(m));
    }
    if (now.getTime() - this.#lastActivityMs >= this.#idleTimeoutMs) {
      void this.end('idle_timeout');
      return;
    }
    for (const carried of this.#channels.values()) carried.carrier.rest?.(Date.now());
  }

  /**
   * Fail closed (DESIGN invariant 3): when the audit store cannot be written,
   * stop carrying bytes at once, tell the vendor, and end after a short grace.
   */
  failClosed(err: unknown): void {
    if (this.#failing || this.ended) return;
    this.#failing = true;
    this.ctx.log.error(
      { err, sessionId: this.id },
      'audit store write failed; session fails closed',
    );
    const seconds = Math.round(this.deps.auditFailureGraceMs / 1000);
    this.notice(
      `The audit store is unavailable. Nothing more is forwarded; this session ends in ${seconds} seconds.`,
    );
    setTimeout(() => void this.end('audit_failure'), this.deps.auditFailureGraceMs).unref();
  }

  get failing(): boolean {
    return this.#failing;
  }

  /**
   * Whether the asset's bytes may still be carried to the vendor: each is
   * recorded first, so not once the store failed or the recording is sealed
   * (the session has ended; what the asset still sends then goes nowhere).
   */
  get carriesOutput(): boolean {
    return !this.#failing && !this.recorder.closed;
  }

  async #refuseChannel(what: string, data: Record<string, JsonValue>): Promise<void> {
    await this.#auditEvent('session.channel_refused', 'failure', { what, ...data });
  }

  async #auditEvent(
    type: 'session.channel_refused' | 'session.asset_refused',
    outcome: 'success' | 'failure',
    data: Record<string, JsonValue>,
  ): Promise<void> {
    try {
      await withTransaction(this.ctx.pool, (client) =>
        audit(client, this.ctx, {
          type,
          actor: { kind: 'user', id: this.user.id, ip: this.client.ip },
          subjectId: this.id,
          outcome,
          data,
        }),
      );
    } catch (err) {
      this.failClosed(err);
    }
  }

  /** Ends the session once: tells the vendor why, closes both sides, seals the recording, records the end. */
  end(reason: EndReason, detail: string | null = null): Promise<void> {
    this.#ending ??= this.#finish(reason, detail);
    return this.#ending;
  }

  async #finish(reason: EndReason, detail: string | null): Promise<void> {
    if (reason !== 'client_exit') this.notice(endReasonText(reason, detail));
    const channels = [...this.#channels.values()];
    for (const carried of channels) {
      carried.carrier.stop();
      try {
        if (reason !== 'client_exit') carried.channel.exit(255);
        carried.channel.end();
        carried.channel.close();
      } catch {
        // the channel may already be closed
      }
    }
    // OpenSSH drops output it has not yet shown when the connection is torn
    // down under it: let the client close its channels (and so show the
    // notice) before the connection goes, for at most a second.
    if (channels.length > 0 && reason !== 'client_exit') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        timer.unref();
        this.connection.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.connection.end();
    if (this.#upstream !== null) {
      this.#upstream.then((c) => c.end()).catch(() => undefined);
    }
    let recording: { chunks: number; head: string | null };
    try {
      recording = await this.recorder.close();
    } catch (err) {
      // Seal what did reach the store, so that part still verifies (see extentToSeal).
      const extent = await extentToSeal(this.ctx.pool, this.id, this.recorder).catch(() => ({
        ...this.recorder.durable,
        storedDiffers: false,
      }));
      if (extent.storedDiffers)
        this.ctx.log.error(
          { sessionId: this.id, sealed: extent.chunks },
          'the recording store holds chunks this recorder did not write; sealing its own',
        );
      recording = { chunks: extent.chunks, head: extent.head };
      this.ctx.log.error(
        { err, sessionId: this.id, durableChunks: recording.chunks },
        'recording could not be completed; sealing the part that is stored',
      );
    }
    const endedAt = this.ctx.clock.now();
    const record: SessionEndRecord = {
      sessionId: this.id,
      endedAt: endedAt.toISOString(),
      reason,
      detail,
      asset: this.asset.name,
      userId: this.user.id,
      durationMs: endedAt.getTime() - this.startedAt.getTime(),
      bytesFromClient: this.bytesFromClient,
      bytesToClient: this.bytesToClient,
      recordingChunks: recording.chunks,
      recordingHead: recording.head,
    };
    try {
      await writeSessionEnd(this.ctx, record);
    } catch (err) {
      this.ctx.log.error(
        { err, sessionId: this.id },
        'session end could not be recorded yet; will retry',
      );
      await this.deps.deferEnd(record);
    }
    this.deps.onEnded(this);
  }
}
