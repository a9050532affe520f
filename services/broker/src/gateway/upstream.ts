import { connect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseSshPublicKey } from '@airlock/crypto';
import ssh2, { type Client, type ConnectConfig } from 'ssh2';
import type { BrokerContext } from '../context.js';
import type { AssetRecord } from '../features/assets/repository.js';
import { shareEventLoop } from './fair-reads.js';
import { credentialAad } from '../features/assets/service.js';

/** What a dial is for: the session and grant it carries, so a connector can re-check them. */
export interface DialContext {
  readonly sessionId: string;
  readonly grant: {
    readonly id: string;
    readonly userId: string;
    readonly notBefore: Date;
    readonly notAfter: Date;
  };
  /**
   * Called, before the stream is destroyed, when the connector carrying it is
   * lost: the session then ends `connector_lost`, not as an asset that hung up.
   */
  onConnectorLost(detail: string): void;
}

/**
 * How the broker reaches a port of an asset: directly, or through a zone
 * connector (ConnectorDialer) when the asset's zone has connectors. The
 * session pipeline (host-key pinning, vaulted login, recording, command
 * audit) is the same whichever carries the bytes.
 */
export interface AssetDialer {
  dial(asset: AssetRecord, port: number, context: DialContext): Promise<Duplex>;
}

export class AssetConnectionError extends Error {
  constructor(
    readonly reason:
      'unreachable' | 'host_key_mismatch' | 'auth_failed' | 'no_credential' | 'not_ssh',
    message: string,
  ) {
    super(message);
    this.name = 'AssetConnectionError';
  }
}

export const directDialer: AssetDialer = {
  dial(asset, port) {
    return new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: asset.host, port, timeout: 10_000 });
      socket.setNoDelay(true);
      socket.once('connect', () => {
        socket.setTimeout(0);
        resolve(socket);
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(new AssetConnectionError('unreachable', `${asset.name}:${port} did not answer`));
      });
      socket.once('error', (err) =>
        reject(new AssetConnectionError('unreachable', `${asset.name}:${port}: ${err.message}`)),
      );
    });
  },
};

/**
 * Opens the onward SSH connection: the asset must present its pinned host
 * key (no trust on first use), and the broker logs in with the vaulted
 * credential, which never leaves this function except into ssh2.
 */
export async function connectToAsset(
  ctx: BrokerContext,
  asset: AssetRecord,
  dialer: AssetDialer,
  context: DialContext,
): Promise<Client> {
  if (asset.protocol !== 'ssh')
    throw new AssetConnectionError('not_ssh', `${asset.name} is not an SSH asset`);
  if (asset.hostKey === null)
    throw new AssetConnectionError('host_key_mismatch', `${asset.name} has no pinned host key`);
  if (asset.sealedCredential === null || asset.login === null)
    throw new AssetConnectionError('no_credential', `${asset.name} has no vaulted credential`);
  const pinned = parseSshPublicKey(asset.hostKey).blob;
  const credential = ctx.vault.openString(asset.sealedCredential, credentialAad(asset.id));
  const sock = await dialer.dial(asset, asset.port, context);
  // A TCP transport shares the event loop here, where ssh2 alone reads it.
  // Not in the dialer: a forwarded port's socket is read by the session
  // pipeline, whose ChannelFlow holds it (backpressure, pacing) and already
  // gives it its share per turn; a second party resuming it would undo holds.
  // A connector's stream (WebSocket messages on a socket the HTTP server
  // reads) is left to the WebSocket's own flow control, as it always was.
  if (sock instanceof Socket) shareEventLoop(sock);
  const client = new ssh2.Client();
  let hostKeyRejected = false;
  const config: ConnectConfig = {
    sock,
    username: asset.login,
    readyTimeout: 15_000,
    keepaliveInterval: 15_000,
    hostVerifier: (key: Buffer) => {
      const ok = key.equals(pinned);
      if (!ok) hostKeyRejected = true;
      return ok;
    },
    ...(asset.credentialKind === 'private_key'
      ? { privateKey: credential.reveal() }
      : { password: credential.reveal() }),
  };
  return new Promise<Client>((resolve, reject) => {
    client.once('ready', () => resolve(client));
    client.once('error', (err: Error & { level?: string }) => {
      client.end();
      if (hostKeyRejected)
        reject(
          new AssetConnectionError(
            'host_key_mismatch',
            `${asset.name} presented a host key that does not match the pinned key`,
          ),
        );
      else if (err.level === 'client-authentication')
        reject(
          new AssetConnectionError('auth_failed', `${asset.name} refused the vaulted credential`),
        );
      else reject(new AssetConnectionError('unreachable', `${asset.name}: ${err.message}`));
    });
    client.connect(config);
  });
}
