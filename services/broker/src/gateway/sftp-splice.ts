import { SftpObserver, type FileTransferSummary, type SftpOperation } from '@airlock/sftp-observer';
import { setTimeout as sleep } from 'node:timers/promises';
import { withTransaction } from '@airlock/db';
import type { ClientChannel, ServerChannel } from 'ssh2';
import { audit } from '../audit.js';
import type { LiveSession } from './live-session.js';
import { relayChannelEnd } from './vendor-channel.js';

function describe(op: SftpOperation): string {
  switch (op.kind) {
    case 'open': {
      const mode = op.flags.write ? (op.flags.read ? 'read-write' : 'write') : 'read';
      return `open ${mode} ${op.path}`;
    }
    case 'rename':
    case 'symlink':
      return `${op.kind} ${op.path} -> ${op.target}`;
    case 'extended':
      return `extended ${op.name}${op.path === undefined ? '' : ` ${op.path}`}${op.target === undefined ? '' : ` -> ${op.target}`}`;
    default:
      return `${op.kind} ${op.path}`;
  }
}

/**
 * SFTP (and OpenSSH ≥ 9 `scp`, which speaks SFTP) relayed byte for byte.
 * A pure observer judges each client packet; packets that act on a path are
 * made durable as commands before they are forwarded (write-ahead); each
 * closed file yields its size and SHA-256 in the audit trail.
 */
export class SftpSplice {
  #id = -1;
  readonly #observer: SftpObserver;
  #chain: Promise<void> = Promise.resolve();
  #pending = 0;

  constructor(
    private readonly session: LiveSession,
    private readonly channel: ServerChannel,
    private readonly upstream: ClientChannel,
  ) {
    this.#observer = new SftpObserver({
      onOperation: () => undefined,
      onTransfer: (summary) => void this.#transferred(summary),
      onProtocolError: (message) => {
        this.session.ctx.log.warn(
          { sessionId: session.id, message },
          'sftp protocol error; channel closed',
        );
        this.channel.close();
      },
    });
  }

  start(id: number): void {
    this.#id = id;
    const { upstream, channel, session } = this;
    upstream.on('data', (data: Buffer) => {
      if (!session.carriesOutput) return void upstream.pause();
      session.count('o', data.length);
      const recorded = session.recorder.record(id, 'o', data);
      const written = channel.write(this.#observer.fromServer(data));
      session.applyBackpressure(upstream, {
        bytes: data.length,
        recorded,
        congested: written ? null : channel,
        bulk: true,
      });
    });
    relayChannelEnd(upstream, channel);
    upstream.on('error', (err: Error) => session.channelFailed(channel, err));
    channel.on('data', (data: Buffer) => this.#fromClient(data));
    channel.once('end', () => void this.#chain.then(() => upstream.end()));
    channel.once('close', () => {
      // Files still open when the channel goes are reported as incomplete transfers.
      this.#observer.end();
      upstream.close();
    });
  }

  stop(): void {
    this.upstream.close();
  }

  #fromClient(data: Buffer): void {
    if (this.session.failing || this.session.ended) return;
    this.session.count('i', data.length);
    this.session.recorder.record(this.#id, 'i', data);
    const segments = this.#observer.fromClient(data);
    // Judged packets are forwarded strictly in order, each recorded operation first.
    this.#pending += 1;
    if (this.#pending > 8) this.channel.pause();
    this.#chain = this.#chain
      .then(async () => {
        for (const segment of segments) {
          if (segment.operation !== undefined) {
            const op = segment.operation;
            const verdict = await this.session.recordCommand({
              channel: this.#id,
              kind: 'sftp',
              text: describe(op),
              details: {
                operation: op.kind,
                path: 'path' in op && op.path !== undefined ? op.path : null,
              },
            });
            if (verdict === null) return;
          }
          if (!this.upstream.write(segment.data))
            await new Promise((resolve) => this.upstream.once('drain', resolve));
        }
        // An upload is bulk: paced while someone types (the queue above then
        // fills and holds the vendor's channel).
        const hold = this.session.paceBulk(data.length);
        if (hold > 0) await sleep(hold);
      })
      .catch((err: unknown) => this.session.failClosed(err))
      .finally(() => {
        this.#pending -= 1;
        if (this.#pending <= 8) this.channel.resume();
      });
  }

  async #transferred(summary: FileTransferSummary): Promise<void> {
    try {
      await withTransaction(this.session.ctx.pool, (client) =>
        audit(client, this.session.ctx, {
          type: 'session.file_transfer',
          actor: { kind: 'user', id: this.session.user.id },
          subjectId: this.session.id,
          outcome: summary.status === 'ok' ? 'success' : 'failure',
          data: {
            path: summary.path,
            direction: summary.direction,
            bytesWritten: summary.bytesWritten,
            bytesRead: summary.bytesRead,
            sha256Written: summary.sha256Written,
            sha256Read: summary.sha256Read,
            sequential: summary.sequential,
            asset: this.session.asset.name,
          },
        }),
      );
    } catch (err) {
      this.session.failClosed(err);
    }
  }
}
