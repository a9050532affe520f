/**
 * The broker's end of the zone connector tunnel. Connectors dial OUT to every
 * replica and keep a control WebSocket to each (heartbeats: ws ping/pong);
 * for each session the replica carrying it sends `open` on the control link
 * of a connector of the asset's zone, and the connector reverse-dials a
 * WebSocket of its own for that one stream. Every upgrade carries a fresh
 * signed assertion, verified against the key the connector enrolled, with
 * its jti remembered so that a captured assertion cannot be replayed.
 */
import { randomBytes } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { withTransaction } from '@airlock/db';
import {
  assertionSubject,
  brokerAudience,
  CLOSE_CODES,
  CONTROL_PATH,
  encodeMessage,
  isConnectorUpgradePath,
  isStreamId,
  MAX_CONTROL_FRAME_BYTES,
  parseConnectorMessage,
  PROTOCOL_VERSION,
  publicKeyFromPem,
  signGrantToken,
  STREAM_PATH_PREFIX,
  TokenRefusedError,
  verifyAssertion,
  webSocketStream,
  type AssertionPurpose,
  type AssetEndpoint,
  type BrokerMessage,
} from '@airlock/tunnel';
import { WebSocketServer, type WebSocket } from 'ws';
import { audit, auditAlone } from '../audit.js';
import type { BrokerContext } from '../context.js';
import type { AssetRecord } from '../features/assets/repository.js';
import { staleAfterMs } from '../gateway/instances.js';
import {
  AssetConnectionError,
  directDialer,
  type AssetDialer,
  type DialContext,
} from '../gateway/upstream.js';
import {
  advertiseReplicaUrl,
  disabledConnectorIds,
  findConnectorIdentity,
  forgetExpiredAssertions,
  liveReplicaUrls,
  recordSessionConnector,
  rememberAssertion,
  zoneConnectors,
  zoneEndpoints,
  type ConnectorIdentityRecord,
} from './repository.js';

/** How long a connector has to dial the asset and claim the stream. */
const STREAM_CLAIM_TIMEOUT_MS = 10_000;
/** Largest stream frame accepted from a connector (it sends what its socket read, ≤ 64 KiB). */
const MAX_STREAM_FRAME_BYTES = 4 * 1024 * 1024;
/** How often replica lists and zone asset lists are re-sent when they changed. */
const REFRESH_MS = 5_000;
/** At most one last_seen_at write per link in this time. */
const LAST_SEEN_WRITE_MS = 2_000;

/** A stream carried through a connector: the Duplex the session pipeline reads and writes. */
interface CarriedStream {
  readonly streamId: string;
  readonly duplex: Duplex;
  readonly context: DialContext;
}

interface PendingStream {
  readonly streamId: string;
  readonly connectorId: string;
  readonly zoneId: string;
  readonly link: ControlLink;
  readonly context: DialContext;
  /** False when the dial already failed (timed out, link lost): the stream is then unwanted. */
  readonly resolve: (duplex: Duplex) => boolean;
  readonly reject: (err: Error) => void;
}

interface ControlLink {
  readonly connector: ConnectorIdentityRecord;
  readonly ws: WebSocket;
  readonly address: string;
  readonly version: string | null;
  readonly streams: Set<CarriedStream>;
  lastPongMs: number;
  lastSeenWrittenMs: number;
  assetsSent: string;
  replicasSent: string;
  closed: boolean;
  /** The connect record; a loss is recorded after it, never before. */
  greeted: Promise<void>;
}

export interface ConnectorHubOptions {
  /** Milliseconds between pings; a link silent for two intervals is lost. */
  readonly heartbeatMs: number;
}

function bearer(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return null;
  const match = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(header);
  return match?.[1] ?? null;
}

function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.once('error', () => undefined);
}

function remoteAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

export class ConnectorHub {
  readonly #ctx: BrokerContext;
  readonly #options: ConnectorHubOptions;
  readonly #controlServer = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_CONTROL_FRAME_BYTES,
  });
  readonly #streamServer = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_STREAM_FRAME_BYTES,
    // One stream message per event-loop turn: a bulk stream cannot run the loop
    // for many frames in a row while another session's keystroke waits.
    allowSynchronousEvents: false,
  });
  /** Live control links by connector: usually one per connector, more while one is dying or via two URLs. */
  readonly #links = new Map<string, Set<ControlLink>>();
  readonly #pending = new Map<string, PendingStream>();
  readonly #audience: Promise<string>;
  #instanceId: string | null = null;
  /** This replica's base URL as connectors reach it; known once the HTTP listener is up (start()). */
  #advertisedUrl: string | null = null;
  #timers: NodeJS.Timeout[] = [];
  #server: Server | null = null;
  #closing = false;
  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Other upgrades on this server (the console's terminals) are not ours to answer.
    if (!isConnectorUpgradePath(new URL(req.url ?? '/', 'http://broker').pathname)) return;
    socket.on('error', () => undefined);
    this.#upgrade(req, socket, head).catch((err: unknown) => {
      this.#ctx.log.error({ err }, 'connector upgrade failed');
      refuseUpgrade(socket, 500, 'internal', 'An internal error occurred; it has been logged.');
    });
  };

  constructor(ctx: BrokerContext, options: ConnectorHubOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#audience = brokerAudience(ctx.connectorKeys.publicKey);
  }

  /** Takes WebSocket upgrades on the broker's HTTP server (control and stream paths only). */
  attach(server: Server): void {
    this.#server = server;
    server.on('upgrade', this.#onUpgrade);
  }

  /**
   * Starts heartbeats and advertises this replica (at `advertisedUrl`, its base
   * URL as connectors reach it) once the gateway has announced it. Upgrades
   * before this are refused as not ready.
   */
  async start(instanceId: string, advertisedUrl: string): Promise<void> {
    this.#advertisedUrl = advertisedUrl;
    await advertiseReplicaUrl(this.#ctx.pool, instanceId, advertisedUrl);
    this.#instanceId = instanceId;
    const heartbeat = setInterval(() => this.#ping(), this.#options.heartbeatMs);
    // Checked four times per interval, so a silent link is declared lost within
    // two intervals of its last pong, not up to three.
    const watchdog = setInterval(
      () => this.#checkLiveness(),
      Math.max(25, Math.floor(this.#options.heartbeatMs / 4)),
    );
    watchdog.unref();
    const refresh = setInterval(
      () =>
        void this.#refresh().catch((err: unknown) =>
          this.#ctx.log.warn({ err: (err as Error).message }, 'connector refresh failed'),
        ),
      REFRESH_MS,
    );
    heartbeat.unref();
    refresh.unref();
    this.#timers = [heartbeat, watchdog, refresh];
  }

  readonly dialer: AssetDialer = {
    dial: (asset, port, context) => this.#dial(asset, port, context),
  };

  async close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#server?.off('upgrade', this.#onUpgrade);
    for (const pending of [...this.#pending.values()])
      pending.reject(new AssetConnectionError('unreachable', 'the broker is shutting down'));
    this.#pending.clear();
    const links = [...this.#links.values()].flatMap((set) => [...set]);
    await Promise.all(links.map((link) => this.#linkLost(link, 'broker_shutdown')));
    for (const client of [...this.#controlServer.clients, ...this.#streamServer.clients])
      client.terminate();
    await Promise.all([
      new Promise<void>((resolve) => this.#controlServer.close(() => resolve())),
      new Promise<void>((resolve) => this.#streamServer.close(() => resolve())),
    ]);
  }

  // ---------------------------------------------------------------- upgrades

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://broker').pathname;
    if (this.#closing || this.#instanceId === null) {
      refuseUpgrade(socket, 503, 'service.unavailable', 'The broker is not ready.');
      return;
    }
    if (path === CONTROL_PATH) {
      const connector = await this.#authenticate(req, socket, 'control', null);
      if (connector === null) return;
      this.#controlServer.handleUpgrade(req, socket, head, (ws) =>
        this.#onControl(connector, ws, req),
      );
      return;
    }
    if (path.startsWith(STREAM_PATH_PREFIX)) {
      const streamId = path.slice(STREAM_PATH_PREFIX.length);
      if (!isStreamId(streamId)) {
        refuseUpgrade(socket, 404, 'route.not_found', 'No such route.');
        return;
      }
      const connector = await this.#authenticate(req, socket, 'stream', streamId);
      if (connector === null) return;
      const pending = this.#pending.get(streamId);
      if (pending === undefined || pending.connectorId !== connector.id) {
        // A stream of another connector (possibly of another zone), or none at all:
        // the rightful connector can still claim it; this one is refused and audited.
        await auditAlone(this.#ctx, {
          type: 'connector.stream_refused',
          actor: { kind: 'connector', id: connector.id, ip: remoteAddress(req) },
          subjectId: pending?.context.sessionId ?? null,
          outcome: 'failure',
          data: {
            side: 'broker',
            reason:
              pending === undefined
                ? 'unknown_stream'
                : pending.zoneId === connector.zoneId
                  ? 'other_connector'
                  : 'wrong_zone',
            streamId,
            connectorZoneId: connector.zoneId,
            streamZoneId: pending?.zoneId ?? null,
          },
        });
        refuseUpgrade(
          socket,
          403,
          'connector.assertion_invalid',
          'This connector may not claim that stream.',
        );
        return;
      }
      // Claimed: no one else may claim it; its timer runs on until the handshake completes.
      this.#pending.delete(streamId);
      this.#streamServer.handleUpgrade(req, socket, head, (ws) => this.#onStream(pending, ws));
    }
  }

  /**
   * The connector the upgrade's assertion proves, or null after refusing the
   * upgrade (401, the same for every failure) and auditing why.
   */
  async #authenticate(
    req: IncomingMessage,
    socket: Duplex,
    purpose: AssertionPurpose,
    streamId: string | null,
  ): Promise<ConnectorIdentityRecord | null> {
    const now = this.#ctx.clock.now();
    let claimed: string | null = null;
    try {
      const token = bearer(req);
      if (token === null) throw new TokenRefusedError('malformed', 'no bearer assertion');
      claimed = assertionSubject(token);
      const connector = await findConnectorIdentity(this.#ctx.pool, claimed);
      if (connector === null || connector.publicKey === null || connector.status === 'disabled')
        throw new TokenRefusedError(
          'unknown_connector',
          'no enrolled, enabled connector by that id',
        );
      const claims = await verifyAssertion(token, {
        publicKey: publicKeyFromPem(connector.publicKey),
        connectorId: connector.id,
        audience: await this.#audience,
        purpose,
        now,
      });
      if (purpose === 'stream' && claims.streamId !== streamId)
        throw new TokenRefusedError('claims', 'the assertion names another stream');
      if (!(await rememberAssertion(this.#ctx.pool, claims.jti, connector.id, claims.expiresAt)))
        throw new TokenRefusedError('replayed', 'the assertion was used before');
      return connector;
    } catch (err) {
      if (!(err instanceof TokenRefusedError)) throw err;
      const known = claimed === null ? null : await findConnectorIdentity(this.#ctx.pool, claimed);
      await auditAlone(this.#ctx, {
        type: 'connector.assertion_refused',
        actor:
          known === null
            ? { kind: 'anonymous', ip: remoteAddress(req) }
            : { kind: 'connector', id: known.id, ip: remoteAddress(req) },
        subjectId: known?.id ?? null,
        outcome: 'failure',
        data: { reason: err.reason, detail: err.message, purpose, claimedConnector: claimed },
      });
      refuseUpgrade(
        socket,
        401,
        'connector.assertion_invalid',
        'The connector assertion is invalid, expired or replayed.',
      );
      return null;
    }
  }

  // ---------------------------------------------------------------- control links

  #onControl(connector: ConnectorIdentityRecord, ws: WebSocket, req: IncomingMessage): void {
    const versionHeader = req.headers['x-airlock-connector-version'];
    const version =
      typeof versionHeader === 'string' && /^[\w.+-]{1,40}$/.test(versionHeader)
        ? versionHeader
        : null;
    const link: ControlLink = {
      connector,
      ws,
      address: remoteAddress(req),
      version,
      streams: new Set(),
      lastPongMs: performance.now(),
      lastSeenWrittenMs: 0,
      assetsSent: '',
      replicasSent: '',
      closed: false,
      greeted: Promise.resolve(),
    };
    // Several links of one connector may coexist (a reconnect while the old link is
    // not yet known dead; the same replica reached by two URLs): each lives on its own.
    const links = this.#links.get(connector.id) ?? new Set<ControlLink>();
    links.add(link);
    this.#links.set(connector.id, links);
    this.#ctx.metrics.connectorLinks.inc();

    ws.on('pong', () => {
      link.lastPongMs = performance.now();
      this.#touch(link);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        ws.close(CLOSE_CODES.protocolError, 'text frames only');
        return;
      }
      void this.#onControlMessage(link, Buffer.from(data as Buffer).toString('utf8'));
    });
    ws.on('close', () => void this.#linkLost(link, 'closed'));
    ws.on('error', (err) =>
      this.#ctx.log.debug({ err: err.message, connectorId: connector.id }, 'control link error'),
    );
    link.greeted = this.#greet(link).catch((err: unknown) => {
      this.#ctx.log.error({ err, connectorId: connector.id }, 'could not greet a connector');
      ws.close(CLOSE_CODES.shutdown, 'broker error');
    });
  }

  async #greet(link: ControlLink): Promise<void> {
    const { connector } = link;
    await withTransaction(this.#ctx.pool, async (client) => {
      await client.query(
        `update connectors set status = 'online', version = $2, address = $3, last_seen_at = $4
          where id = $1 and status <> 'disabled'`,
        [connector.id, link.version, link.address, this.#ctx.clock.now()],
      );
      await audit(client, this.#ctx, {
        type: 'connector.connected',
        actor: { kind: 'connector', id: connector.id, ip: link.address },
        subjectId: connector.id,
        data: {
          zoneId: connector.zoneId,
          instance: this.#instanceId,
          version: link.version,
          address: link.address,
        },
      });
    });
    const assets = await zoneEndpoints(this.#ctx.pool, connector.zoneId);
    const replicas = await this.#replicas();
    link.assetsSent = JSON.stringify(assets);
    link.replicasSent = JSON.stringify(replicas);
    this.#send(link, {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      brokerInstance: this.#instanceId ?? 'unknown',
      connectorId: connector.id,
      zoneId: connector.zoneId,
      heartbeatMs: this.#options.heartbeatMs,
      replicas,
      assets,
    });
    this.#ctx.log.info(
      { connectorId: connector.id, zoneId: connector.zoneId, address: link.address },
      'connector connected',
    );
  }

  async #onControlMessage(link: ControlLink, text: string): Promise<void> {
    let message;
    try {
      message = parseConnectorMessage(text);
    } catch (err) {
      this.#ctx.log.warn(
        { err: (err as Error).message, connectorId: link.connector.id },
        'invalid frame from a connector',
      );
      link.ws.close(CLOSE_CODES.protocolError, 'invalid frame');
      return;
    }
    // The connector refused an open (its own checks, or the asset did not answer).
    const pending = this.#pending.get(message.streamId);
    if (pending === undefined || pending.connectorId !== link.connector.id) return;
    this.#pending.delete(message.streamId);
    this.#ctx.metrics.connectorStreams.inc({ outcome: 'refused' });
    await auditAlone(this.#ctx, {
      type: 'connector.stream_refused',
      actor: { kind: 'connector', id: link.connector.id, ip: link.address },
      subjectId: pending.context.sessionId,
      outcome: 'failure',
      data: {
        side: 'connector',
        reason: message.code,
        detail: message.detail,
        streamId: message.streamId,
        grantId: pending.context.grant.id,
      },
    }).catch((err: unknown) => this.#ctx.log.error({ err }, 'could not audit a stream refusal'));
    pending.reject(
      new AssetConnectionError(
        'unreachable',
        message.code === 'asset_unreachable'
          ? `the connector could not reach the asset: ${message.detail}`
          : `the connector refused the stream (${message.code})`,
      ),
    );
  }

  #send(link: ControlLink, message: BrokerMessage): void {
    if (link.ws.readyState === link.ws.OPEN) link.ws.send(encodeMessage(message));
  }

  #touch(link: ControlLink): void {
    const nowMs = performance.now();
    if (nowMs - link.lastSeenWrittenMs < LAST_SEEN_WRITE_MS) return;
    link.lastSeenWrittenMs = nowMs;
    this.#ctx.pool
      // Also online again: another replica may have marked it offline when its own link dropped.
      .query(
        `update connectors set last_seen_at = $2,
                status = case when status = 'offline' then 'online' else status end
          where id = $1`,
        [link.connector.id, this.#ctx.clock.now()],
      )
      .catch((err: unknown) =>
        this.#ctx.log.warn({ err: (err as Error).message }, 'could not record connector last-seen'),
      );
  }

  #ping(): void {
    for (const link of this.#allLinks()) {
      try {
        link.ws.ping();
      } catch {
        void this.#linkLost(link, 'closed');
      }
    }
  }

  /**
   * A link with no pong for 1.75 intervals has missed its last ping by more
   * than most of an interval; checked every quarter interval, it is declared
   * lost at most two intervals after it fell silent.
   */
  #checkLiveness(): void {
    const nowMs = performance.now();
    for (const link of this.#allLinks())
      if (nowMs - link.lastPongMs > 1.75 * this.#options.heartbeatMs)
        void this.#linkLost(link, 'heartbeat_timeout');
  }

  /**
   * The link is gone (closed, silent for two heartbeats, disabled, shutdown):
   * every stream it carried ends `connector_lost` — nothing is resumed — and
   * the loss is recorded. Runs once per link.
   */
  async #linkLost(
    link: ControlLink,
    reason: 'closed' | 'heartbeat_timeout' | 'disabled' | 'broker_shutdown',
  ): Promise<void> {
    if (link.closed) return;
    link.closed = true;
    this.#ctx.metrics.connectorLinks.dec();
    const siblings = this.#links.get(link.connector.id);
    siblings?.delete(link);
    if (siblings?.size === 0) this.#links.delete(link.connector.id);
    const detail =
      reason === 'heartbeat_timeout'
        ? `connector ${link.connector.name} stopped answering heartbeats`
        : reason === 'disabled'
          ? `connector ${link.connector.name} was disabled`
          : `the link to connector ${link.connector.name} was lost`;
    for (const stream of link.streams) {
      this.#ctx.metrics.connectorStreams.inc({ outcome: 'lost' });
      stream.context.onConnectorLost(detail);
      stream.duplex.destroy();
    }
    link.streams.clear();
    for (const pending of [...this.#pending.values()]) {
      if (pending.link !== link) continue;
      pending.reject(new AssetConnectionError('unreachable', detail));
    }
    const closeCode =
      reason === 'disabled'
        ? CLOSE_CODES.unauthorized
        : reason === 'broker_shutdown'
          ? CLOSE_CODES.shutdown
          : reason === 'heartbeat_timeout'
            ? CLOSE_CODES.heartbeatTimeout
            : null;
    if (closeCode !== null && link.ws.readyState === link.ws.OPEN) {
      link.ws.close(closeCode, reason);
      // A silent peer never answers the close frame.
      setTimeout(() => link.ws.terminate(), reason === 'heartbeat_timeout' ? 0 : 1_000).unref();
    } else link.ws.terminate();
    this.#ctx.log.warn({ connectorId: link.connector.id, reason }, 'connector link lost');
    await link.greeted;
    try {
      await withTransaction(this.#ctx.pool, async (client) => {
        // Offline only if no other link of this connector is up on this replica.
        if (!this.#links.has(link.connector.id))
          await client.query(
            `update connectors set status = 'offline', last_seen_at = $2
              where id = $1 and status = 'online'`,
            [link.connector.id, this.#ctx.clock.now()],
          );
        await audit(client, this.#ctx, {
          type: 'connector.disconnected',
          actor: { kind: 'connector', id: link.connector.id, ip: link.address },
          subjectId: link.connector.id,
          outcome: reason === 'broker_shutdown' ? 'success' : 'failure',
          data: { reason, instance: this.#instanceId, zoneId: link.connector.zoneId },
        });
      });
    } catch (err) {
      this.#ctx.log.error({ err }, 'could not record a connector disconnect');
    }
  }

  async #replicas(): Promise<string[]> {
    const urls = await liveReplicaUrls(
      this.#ctx.pool,
      this.#ctx.clock.now(),
      staleAfterMs(this.#ctx),
    );
    const own = this.#advertisedUrl;
    return own === null || urls.includes(own) ? urls : [...urls, own];
  }

  /**
   * Keeps every link's replica list and zone asset list current, drops the
   * links of connectors an admin disabled, forgets expired assertion ids.
   */
  async #refresh(): Promise<void> {
    await forgetExpiredAssertions(this.#ctx.pool, this.#ctx.clock.now());
    if (this.#links.size === 0) return;
    const disabled = await disabledConnectorIds(this.#ctx.pool, [...this.#links.keys()]);
    for (const id of disabled)
      for (const link of this.#links.get(id) ?? []) void this.#linkLost(link, 'disabled');
    const replicas = await this.#replicas();
    const replicasText = JSON.stringify(replicas);
    const zones = new Map<string, AssetEndpoint[]>();
    for (const link of this.#allLinks()) {
      if (link.replicasSent !== replicasText) {
        link.replicasSent = replicasText;
        this.#send(link, { type: 'replicas', replicas });
      }
      const zoneId = link.connector.zoneId;
      if (!zones.has(zoneId)) zones.set(zoneId, await zoneEndpoints(this.#ctx.pool, zoneId));
      this.#syncAssets(link, zones.get(zoneId) ?? []);
    }
  }

  #syncAssets(link: ControlLink, assets: AssetEndpoint[]): void {
    const text = JSON.stringify(assets);
    if (link.assetsSent === text) return;
    link.assetsSent = text;
    this.#send(link, { type: 'assets', assets });
  }

  // ---------------------------------------------------------------- streams

  /**
   * Assets of a zone with connectors are reached only through them (see
   * zoneConnectors); a zone without any is dialled directly. Among the zone's
   * connectors linked to this replica, the one carrying fewest streams
   * serves; a dropped one is simply no longer linked, so the others take over.
   */
  async #dial(asset: AssetRecord, port: number, context: DialContext): Promise<Duplex> {
    const zone = await zoneConnectors(this.#ctx.pool, asset.zoneId);
    if (!zone.hasConnectors) return directDialer.dial(asset, port, context);
    const candidates = zone.servingIds
      .flatMap((id) => [...(this.#links.get(id) ?? [])])
      .filter((link) => !link.closed)
      .sort((a, b) => this.#load(a) - this.#load(b));
    const link = candidates[0];
    if (link === undefined)
      throw new AssetConnectionError(
        'unreachable',
        `no connector of the zone of ${asset.name} is connected`,
      );
    // The connector checks host:port against this list: make sure it has the current one.
    this.#syncAssets(link, await zoneEndpoints(this.#ctx.pool, asset.zoneId));
    const streamId = `stm_${randomBytes(16).toString('base64url')}`;
    const grantToken = await signGrantToken(
      this.#ctx.connectorKeys.privateKey,
      {
        zoneId: asset.zoneId,
        grantId: context.grant.id,
        userId: context.grant.userId,
        sessionId: context.sessionId,
        streamId,
        assetId: asset.id,
        host: asset.host,
        port,
        notBefore: context.grant.notBefore,
        notAfter: context.grant.notAfter,
      },
      this.#ctx.clock.now(),
    );
    const duplex = await new Promise<Duplex>((resolve, reject) => {
      // Settles once: by the stream, a refusal, the link's loss or the timer, whichever is first.
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#pending.delete(streamId);
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new AssetConnectionError(
              'unreachable',
              `connector ${link.connector.name} did not open the stream in time`,
            ),
          ),
        STREAM_CLAIM_TIMEOUT_MS,
      );
      this.#pending.set(streamId, {
        streamId,
        connectorId: link.connector.id,
        zoneId: asset.zoneId,
        link,
        context,
        resolve: (stream) => {
          if (settled) return false;
          settled = true;
          clearTimeout(timer);
          resolve(stream);
          return true;
        },
        reject: fail,
      });
      this.#send(link, {
        type: 'open',
        streamId,
        grantToken,
        assetId: asset.id,
        host: asset.host,
        port,
      });
    });
    await recordSessionConnector(this.#ctx.pool, context.sessionId, link.connector.id).catch(
      (err: unknown) =>
        this.#ctx.log.warn({ err, sessionId: context.sessionId }, 'could not record the connector'),
    );
    return duplex;
  }

  #allLinks(): ControlLink[] {
    return [...this.#links.values()].flatMap((set) => [...set]);
  }

  #load(link: ControlLink): number {
    let pending = 0;
    for (const p of this.#pending.values()) if (p.link === link) pending += 1;
    return link.streams.size + pending;
  }

  #onStream(pending: PendingStream, ws: WebSocket): void {
    const { link } = pending;
    if (link.closed) {
      ws.terminate();
      pending.reject(new AssetConnectionError('unreachable', 'the connector link was lost'));
      return;
    }
    const stream: CarriedStream = {
      streamId: pending.streamId,
      duplex: webSocketStream(ws, {
        // 1000 means the connector closed the stream because the asset did; anything
        // else not of our making (1006: its socket vanished; 1001: it went away) is a loss.
        onAbnormalClose: () => {
          this.#ctx.metrics.connectorStreams.inc({ outcome: 'lost' });
          pending.context.onConnectorLost(`connector ${link.connector.name} dropped the stream`);
        },
      }),
      context: pending.context,
    };
    const { duplex } = stream;
    link.streams.add(stream);
    ws.once('close', () => link.streams.delete(stream));
    duplex.on('error', () => undefined);
    if (pending.resolve(duplex)) this.#ctx.metrics.connectorStreams.inc({ outcome: 'opened' });
    else duplex.destroy();
  }
}
