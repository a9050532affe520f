/**
 * The connector at work: one control link to every broker replica it is told
 * about (each reconnecting by itself with jittered exponential backoff), and
 * for every `open` the broker sends, its own checks before anything is
 * dialled — a grant token signed by the pinned broker key for this zone, the
 * asset endpoint in this zone's list, the grant's window open now, the token
 * not seen before. Then it dials the asset and reverse-dials one WebSocket
 * per stream, so each session has its own TCP flow control.
 */
import { connect, type Socket } from 'node:net';
import {
  checkBrokerUrl,
  CLOSE_CODES,
  CONTROL_PATH,
  encodeMessage,
  endpointAllows,
  MAX_CONTROL_FRAME_BYTES,
  parseBrokerMessage,
  PROTOCOL_VERSION,
  signAssertion,
  STREAM_PATH_PREFIX,
  TokenRefusedError,
  TunnelProtocolError,
  verifyGrantToken,
  webSocketStream,
  webSocketUrl,
  type AssetEndpoint,
  type BrokerMessage,
  type ConnectorMessage,
  type RefusalCode,
} from '@airlock/tunnel';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { ConnectorAuditLog } from './audit-log.js';
import type { ConnectorIdentity } from './identity.js';
import type { TlsClientOptions } from './tls.js';

const DIAL_TIMEOUT_MS = 10_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Slack on top of two heartbeat intervals before a silent broker is given up. */
const WATCHDOG_SLACK_MS = 1_000;

export interface AgentOptions {
  readonly identity: ConnectorIdentity;
  readonly brokerUrl: URL;
  readonly tls: TlsClientOptions;
  readonly log: Logger;
  readonly auditLog: ConnectorAuditLog;
  readonly version: string;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Called for every link that completes its hello (tests and operators wait on it). */
  onLinked?(url: string, brokerInstance: string): void;
}

type OpenRequest = Extract<BrokerMessage, { type: 'open' }>;

/**
 * RFC 6455 §10.3: client-to-server masking protects proxies from payloads
 * chosen by hostile browser scripts. The connector is no browser, its bytes
 * are not attacker-chosen frames for an intermediary to misread, and in
 * production they travel inside TLS; an all-zero key lets both ends skip the
 * per-byte XOR (ws does when the key is zero), which matters for bulk streams.
 */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Jittered exponential backoff ("equal jitter"): half fixed, half random, capped. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** One control link to one broker replica, reconnecting by itself until stopped. */
class BrokerLink {
  #ws: WebSocket | null = null;
  #attempt = 0;
  #retry: NodeJS.Timeout | null = null;
  #watchdog: NodeJS.Timeout | null = null;
  #heartbeatMs = 5_000;
  #stopped = false;

  constructor(
    readonly url: URL,
    private readonly agent: ConnectorAgent,
  ) {}

  start(): void {
    void this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
    if (this.#watchdog !== null) clearTimeout(this.#watchdog);
    this.#ws?.close(CLOSE_CODES.shutdown, 'connector stopping');
    const ws = this.#ws;
    setTimeout(() => ws?.terminate(), 1_000).unref();
  }

  send(message: ConnectorMessage): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(encodeMessage(message));
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const { identity, options } = this.agent;
    let assertion: string;
    try {
      assertion = await signAssertion({
        privateKey: identity.privateKey,
        connectorId: identity.connectorId,
        audience: identity.audience,
        purpose: 'control',
      });
    } catch (err) {
      options.log.error({ err }, 'could not sign an assertion');
      this.#scheduleReconnect();
      return;
    }
    const ws = new WebSocket(webSocketUrl(this.url, CONTROL_PATH), {
      headers: {
        authorization: `Bearer ${assertion}`,
        'x-airlock-connector-version': options.version,
      },
      perMessageDeflate: false,
      maxPayload: MAX_CONTROL_FRAME_BYTES,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      ...options.tls,
    });
    this.#ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      options.log.warn(
        { broker: this.url.href, status: res.statusCode },
        'the broker refused the control link',
      );
      // 401: the broker no longer accepts this identity (disabled, or a clock far off).
      options.auditLog.append('link.refused', { broker: this.url.href, status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      options.log.debug({ broker: this.url.href }, 'control link open');
      this.#armWatchdog();
    });
    ws.on('ping', () => this.#armWatchdog());
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        ws.close(CLOSE_CODES.protocolError, 'text frames only');
        return;
      }
      let message: BrokerMessage;
      try {
        message = parseBrokerMessage(Buffer.from(data as Buffer).toString('utf8'));
      } catch (err) {
        if (!(err instanceof TunnelProtocolError)) throw err;
        options.log.warn({ err: err.message, broker: this.url.href }, 'invalid frame from broker');
        ws.close(CLOSE_CODES.protocolError, 'invalid frame');
        return;
      }
      this.#onMessage(message);
    });
    ws.on('error', (err) =>
      options.log.debug({ err: err.message, broker: this.url.href }, 'control link error'),
    );
    ws.on('close', (code) => {
      if (this.#watchdog !== null) clearTimeout(this.#watchdog);
      if (this.#ws === ws) this.#ws = null;
      if (!this.#stopped) {
        options.log.warn({ broker: this.url.href, code }, 'control link closed; reconnecting');
        this.#scheduleReconnect();
      }
    });
  }

  #onMessage(message: BrokerMessage): void {
    const { options, identity } = this.agent;
    switch (message.type) {
      case 'hello':
        if (message.connectorId !== identity.connectorId || message.zoneId !== identity.zoneId) {
          options.log.error(
            { broker: this.url.href, connectorId: message.connectorId, zoneId: message.zoneId },
            'the broker greeted another connector or zone',
          );
          this.#ws?.close(CLOSE_CODES.protocolError, 'identity mismatch');
          return;
        }
        if (message.protocol !== PROTOCOL_VERSION)
          options.log.warn({ protocol: message.protocol }, 'the broker speaks another protocol');
        this.#attempt = 0;
        this.#heartbeatMs = message.heartbeatMs;
        this.#armWatchdog();
        this.agent.setAssets(message.assets);
        this.agent.setReplicas(message.replicas);
        options.log.info(
          {
            broker: this.url.href,
            instance: message.brokerInstance,
            assets: message.assets.length,
          },
          'linked to broker',
        );
        options.onLinked?.(this.url.href, message.brokerInstance);
        return;
      case 'assets':
        this.agent.setAssets(message.assets);
        return;
      case 'replicas':
        this.agent.setReplicas(message.replicas);
        return;
      case 'open':
        void this.agent.open(this, message);
        return;
    }
  }

  /** A broker silent for two heartbeats (no ping) is gone: drop the link and dial again. */
  #armWatchdog(): void {
    if (this.#watchdog !== null) clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(
      () => {
        this.agent.options.log.warn({ broker: this.url.href }, 'broker missed heartbeats');
        this.#ws?.terminate();
      },
      2 * this.#heartbeatMs + WATCHDOG_SLACK_MS,
    );
    this.#watchdog.unref();
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#retry !== null) return;
    const { backoffInitialMs, backoffMaxMs } = this.agent.options;
    const delay = backoffDelay(this.#attempt, backoffInitialMs, backoffMaxMs);
    this.#attempt += 1;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      void this.#connect();
    }, delay);
  }
}

export class ConnectorAgent {
  readonly #links = new Map<string, BrokerLink>();
  readonly #primary: string;
  #assets: readonly AssetEndpoint[] = [];
  /** Grant-token ids already used, until they expire: a replayed `open` is refused. */
  readonly #seenGrantTokens = new Map<string, number>();
  readonly #streams = new Set<{ socket: Socket; ws: WebSocket | null }>();
  #stopped = false;

  constructor(readonly options: AgentOptions) {
    this.#primary = checkBrokerUrl(options.brokerUrl.href).href;
  }

  get identity(): ConnectorIdentity {
    return this.options.identity;
  }

  start(): void {
    this.#addLink(this.#primary);
  }

  stop(): void {
    this.#stopped = true;
    for (const link of this.#links.values()) link.stop();
    this.#links.clear();
    for (const stream of this.#streams) {
      stream.socket.destroy();
      stream.ws?.terminate();
    }
    this.#streams.clear();
  }

  setAssets(assets: readonly AssetEndpoint[]): void {
    this.#assets = assets;
  }

  /** Keeps a link to every replica the broker lists (and always to the URL it was given). */
  setReplicas(replicas: readonly string[]): void {
    if (this.#stopped) return;
    const wanted = new Set<string>([this.#primary]);
    for (const replica of replicas) {
      try {
        wanted.add(checkBrokerUrl(replica).href);
      } catch (err) {
        this.options.log.warn(
          { replica, err: (err as Error).message },
          'ignoring a replica URL that breaks the transport policy',
        );
      }
    }
    for (const url of wanted) if (!this.#links.has(url)) this.#addLink(url);
    for (const [url, link] of this.#links)
      if (!wanted.has(url)) {
        link.stop();
        this.#links.delete(url);
      }
  }

  #addLink(url: string): void {
    const link = new BrokerLink(new URL(url), this);
    this.#links.set(url, link);
    link.start();
  }

  /** The connector's own checks, then the dial, then the reverse stream. */
  async open(link: BrokerLink, request: OpenRequest): Promise<void> {
    const { log, auditLog, identity } = this.options;
    const about = {
      streamId: request.streamId,
      assetId: request.assetId,
      host: request.host,
      port: request.port,
      broker: link.url.href,
    };
    const refuse = (code: RefusalCode, detail: string, extra: Record<string, unknown> = {}) => {
      auditLog.append('stream.refused', { ...about, ...extra, code, detail });
      log.warn({ ...about, code, detail }, 'refused a stream');
      link.send({ type: 'refused', streamId: request.streamId, code, detail });
    };
    const now = new Date();
    let grant;
    try {
      grant = await verifyGrantToken(request.grantToken, {
        publicKey: identity.brokerPublicKey,
        zoneId: identity.zoneId,
        now,
      });
    } catch (err) {
      if (!(err instanceof TokenRefusedError)) throw err;
      refuse('grant_invalid', `the grant token was refused: ${err.reason}`);
      return;
    }
    const who = { grantId: grant.grantId, userId: grant.userId, sessionId: grant.sessionId };
    if (
      grant.streamId !== request.streamId ||
      grant.assetId !== request.assetId ||
      grant.host !== request.host ||
      grant.port !== request.port
    ) {
      refuse('grant_invalid', 'the request does not match its grant token', who);
      return;
    }
    for (const [jti, expiresMs] of this.#seenGrantTokens)
      if (expiresMs < now.getTime() - 60_000) this.#seenGrantTokens.delete(jti);
    if (this.#seenGrantTokens.has(grant.jti)) {
      refuse('grant_replayed', 'the grant token was used before', who);
      return;
    }
    this.#seenGrantTokens.set(grant.jti, grant.expiresAt.getTime());
    if (now < grant.notBefore || now >= grant.notAfter) {
      refuse('window_closed', 'the grant window is not open now', who);
      return;
    }
    if (!endpointAllows(this.#assets, request.assetId, request.host, request.port)) {
      refuse('asset_not_in_zone', 'the endpoint is not an asset of this zone', who);
      return;
    }

    let socket: Socket;
    try {
      socket = await dialAsset(request.host, request.port);
    } catch (err) {
      refuse('asset_unreachable', (err as Error).message, who);
      return;
    }
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    const entry: { socket: Socket; ws: WebSocket | null } = { socket, ws: null };
    this.#streams.add(entry);
    socket.on('error', (err) => log.debug({ ...about, err: err.message }, 'asset socket error'));
    try {
      const assertion = await signAssertion({
        privateKey: identity.privateKey,
        connectorId: identity.connectorId,
        audience: identity.audience,
        purpose: 'stream',
        streamId: request.streamId,
      });
      const ws = new WebSocket(webSocketUrl(link.url, `${STREAM_PATH_PREFIX}${request.streamId}`), {
        headers: { authorization: `Bearer ${assertion}` },
        perMessageDeflate: false,
        // One message per event-loop turn, so streams take turns (see the broker's hub).
        allowSynchronousEvents: false,
        generateMask: zeroMask,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        ...this.options.tls,
      });
      entry.ws = ws;
      ws.on('unexpected-response', (_req, res) => {
        log.warn({ ...about, status: res.statusCode }, 'the broker refused the stream');
        res.resume();
        ws.terminate();
      });
      ws.on('error', (err) => log.debug({ ...about, err: err.message }, 'stream link error'));
      ws.once('open', () => {
        auditLog.append('stream.opened', { ...about, ...who });
        this.#carry(socket, ws, () => {
          this.#streams.delete(entry);
          auditLog.append('stream.closed', { ...about, ...who });
        });
      });
      ws.once('close', () => {
        if (socket.readyState !== 'closed') socket.destroy();
        this.#streams.delete(entry);
      });
    } catch (err) {
      socket.destroy();
      this.#streams.delete(entry);
      log.error({ ...about, err }, 'could not open the stream');
    }
  }

  /**
   * Carries bytes both ways with backpressure (pipe pauses the faster side).
   * When the asset hangs up, the stream is closed cleanly (1000), which the
   * broker reads as "the asset closed", not as a lost connector.
   */
  #carry(socket: Socket, ws: WebSocket, done: () => void): void {
    const duplex = webSocketStream(ws, { onAbnormalClose: () => socket.destroy() });
    duplex.on('error', () => socket.destroy());
    // pipe() half-closes: the asset's FIN becomes `eof`, the broker's `eof` a FIN to the asset.
    socket.pipe(duplex);
    duplex.pipe(socket);
    socket.once('close', () => {
      // The asset reset or vanished: end our side cleanly, it is not the connector failing.
      if (!duplex.writableEnded) duplex.end();
      done();
    });
  }
}

function dialAsset(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // Half-open allowed: the asset's FIN is passed on, and its answer to ours still flows.
    const socket = connect({ host, port, timeout: DIAL_TIMEOUT_MS, allowHalfOpen: true });
    socket.setNoDelay(true);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`${host}:${port} did not answer`));
    });
    socket.once('error', (err) => reject(new Error(`${host}:${port}: ${err.message}`)));
  });
}
