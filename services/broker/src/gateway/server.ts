import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import ssh2, { type Algorithms, type Connection, type ClientInfo } from 'ssh2';
import { pgChunkSink, ThreadedChunkSink, type ChunkSink } from '@airlock/recording';
import type { BrokerContext } from '../context.js';
import { ConnectionAuthenticator } from './authenticator.js';
import { shareEventLoop } from './fair-reads.js';
import { BulkPacer } from './pacing.js';
import { loadGatewayHostKey, type GatewayHostKey } from './host-keys.js';
import {
  announceInstance,
  closeOrphanedSessions,
  heartbeatMs,
  retireInstance,
} from './instances.js';
import { LiveSession, type GatewayDeps } from './live-session.js';
import { serveMenu } from './menu.js';
import { SessionRegistry } from './registry.js';
import { SessionSignalListener } from './signals.js';
import { directDialer, type AssetDialer } from './upstream.js';
import type { WebTerminals } from '../features/terminal/websockets.js';

/**
 * Only modern algorithms: curve25519 key exchange, AEAD ciphers, SHA-2 MACs,
 * an Ed25519 host key. ssh2 adds the strict-KEX marker
 * (kex-strict-s-v00@openssh.com) itself, closing Terrapin (CVE-2023-48795).
 */
export const GATEWAY_ALGORITHMS: Algorithms = {
  kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'],
  cipher: ['chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com', 'aes128-gcm@openssh.com'],
  hmac: [
    'hmac-sha2-256-etm@openssh.com',
    'hmac-sha2-512-etm@openssh.com',
    'hmac-sha2-256',
    'hmac-sha2-512',
  ],
  serverHostKey: ['ssh-ed25519'],
  compress: ['none'],
};

export function nativeCryptoAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    return true;
  } catch {
    return false;
  }
}

export interface SshGateway extends WebTerminals {
  readonly address: string;
  readonly hostKey: GatewayHostKey;
  readonly registry: SessionRegistry;
  readonly instanceId: string;
  close(reason?: 'broker_shutdown'): Promise<void>;
}

/** Quiet time after which an idle shell's terminal emulator is put to rest (see ShellSplice.rest). */
export const DEFAULT_TERMINAL_REST_AFTER_MS = 10_000;

/** The gateway's recording writer thread, on the broker's own database; null when the pool names none. */
function recordingWriter(ctx: BrokerContext): ThreadedChunkSink | null {
  const { connectionString } = ctx.pool.options;
  if (connectionString === undefined) return null;
  return new ThreadedChunkSink({ connectionString, applicationName: 'airlock-recording' });
}

export async function startSshGateway(
  ctx: BrokerContext,
  options: {
    host: string;
    port: number;
    dialer?: AssetDialer;
    auditFailureGraceMs?: number;
    /** Where session end records wait on disk while the audit store is down (else memory only). */
    pendingEndsDir?: string;
    superviseEveryMs?: number;
    /** Quiet time after which a shell's terminal emulator is put to rest. */
    terminalRestAfterMs?: number;
    /**
     * Where recordings are written. Default: a writer thread of the gateway's own
     * (ThreadedChunkSink), so that recording garbage never pauses the event loop
     * that carries every session's keystrokes.
     */
    recordingSink?: ChunkSink;
    /** Bulk channels' shared rate while someone types (default: the config's); 0: never paced. */
    bulkMiBpsWhileInteractive?: number;
  },
): Promise<SshGateway> {
  const hostKey = await loadGatewayHostKey(ctx);
  const instanceId = `brk_${randomBytes(8).toString('hex')}`;
  const registry = new SessionRegistry(ctx, options.pendingEndsDir ?? null);
  await announceInstance(ctx, instanceId);
  // Before the orphan sweep, which would otherwise close them as broker_shutdown.
  const recordedLate = await registry.recordEndsLeftByPreviousRun();
  if (recordedLate > 0)
    ctx.log.warn({ recordedLate }, 'recorded session ends left pending by a previous run');
  const recovered = await closeOrphanedSessions(ctx, instanceId);
  if (recovered > 0) ctx.log.warn({ recovered }, 'closed sessions left open by a stopped broker');

  const ownSink = options.recordingSink === undefined ? recordingWriter(ctx) : null;
  let address = '';
  const deps: GatewayDeps = {
    ctx,
    dialer: options.dialer ?? directDialer,
    recordingSink: options.recordingSink ?? ownSink ?? pgChunkSink(ctx.pool),
    instanceId,
    auditFailureGraceMs: options.auditFailureGraceMs ?? 5_000,
    terminalRestAfterMs: options.terminalRestAfterMs ?? DEFAULT_TERMINAL_REST_AFTER_MS,
    pacer: new BulkPacer({
      bytesPerSecond:
        (options.bulkMiBpsWhileInteractive ?? ctx.config.bulkMiBpsWhileInteractive) * 1024 * 1024,
    }),
    onEnded: (session) => registry.remove(session),
    deferEnd: (end) => registry.deferEnd(end),
  };

  /** Every open connection, with a session or not (still authenticating, at the grant menu). */
  const connections = new Set<Connection>();

  /** A session that starts carrying nothing yet; false when its record could not be written. */
  const startSession = (session: LiveSession): void => {
    registry.add(session);
    session.start().catch((err: unknown) => {
      ctx.log.error({ err, sessionId: session.id }, 'session could not start (audit store?)');
      void session.end('audit_failure', 'the session could not be recorded');
    });
  };

  const onConnection = (connection: Connection, info: ClientInfo): void => {
    connections.add(connection);
    connection.once('close', () => connections.delete(connection));
    const authenticator = new ConnectionAuthenticator(ctx, { ip: info.ip });
    let login: string | null = null;
    connection.on('authentication', (auth) => {
      login = auth.username;
      void authenticator.handle(auth);
    });
    connection.once('close', () => void authenticator.connectionClosed(login));
    connection.on('error', (err) =>
      ctx.log.debug({ err: err.message, ip: info.ip }, 'ssh connection error'),
    );
    connection.once('ready', () => {
      const identity = authenticator.identity;
      if (identity === null) {
        connection.end();
        return;
      }
      if (identity.kind === 'menu') {
        serveMenu(ctx, connection, identity.user, address);
        return;
      }
      const session = new LiveSession(deps, identity, connection, {
        ip: info.ip,
        version: info.header.versions.software ?? null,
      });
      session.attach(connection);
      startSession(session);
    });
  };

  const sshServer = new ssh2.Server(
    { hostKeys: [hostKey.privateKey.reveal()], algorithms: GATEWAY_ALGORITHMS, ident: 'Airlock' },
    onConnection,
  );
  // Our own listener, handing each socket to ssh2, so that shutdown can reach every socket.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    shareEventLoop(socket);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    sshServer.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;

  const listener = new SessionSignalListener(ctx, (signal) => registry.onSignal(signal));
  await listener.start();
  const supervisor = setInterval(
    () =>
      void registry
        .tick()
        .catch((err: unknown) => ctx.log.error({ err }, 'supervisor tick failed')),
    options.superviseEveryMs ?? 250,
  );
  supervisor.unref();
  const heartbeat = setInterval(() => {
    announceInstance(ctx, instanceId)
      .then(() => closeOrphanedSessions(ctx, instanceId))
      .catch((err: unknown) => ctx.log.warn({ err: (err as Error).message }, 'heartbeat failed'));
  }, heartbeatMs(ctx));
  heartbeat.unref();
  ctx.log.info(
    { ssh: address, hostKey: hostKey.fingerprint, nativeCrypto: nativeCryptoAvailable() },
    'ssh gateway listening',
  );

  return {
    address,
    hostKey,
    registry,
    instanceId,
    startWebSession(identity, connection, client) {
      const session = new LiveSession(deps, identity, connection, { ...client, protocol: 'web' });
      startSession(session);
      return session;
    },
    async close(reason = 'broker_shutdown') {
      clearInterval(supervisor);
      clearInterval(heartbeat);
      await registry.endAll(reason);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // The listener closes only once every connection has. Those without a session (still
      // authenticating, at the grant menu) are told to go; a client waiting at a prompt reads
      // nothing, not even that, so its socket is cut after a moment.
      for (const connection of connections) connection.end();
      const cut = setTimeout(() => sockets.forEach((socket) => socket.destroy()), 1_000);
      await closed;
      clearTimeout(cut);
      await listener.close();
      // Every session has ended and sealed its recording: nothing more is written.
      await ownSink?.close();
      await retireInstance(ctx, instanceId).catch(() => undefined);
    },
  };
}
