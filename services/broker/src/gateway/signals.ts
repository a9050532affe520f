import type { PoolClient, Queryable } from '@airlock/db';
import type { BrokerContext } from '../context.js';

/**
 * Cross-replica session signals over PostgreSQL LISTEN/NOTIFY. A NOTIFY sent
 * inside a transaction is delivered only if that transaction commits, so a
 * revocation and its signal can never disagree; and it works the same with
 * or without Redis. Every replica listens; the one carrying the session acts.
 */
export const SESSION_SIGNAL_CHANNEL = 'airlock_session_signals';

export type SessionSignal =
  | { readonly kind: 'terminate'; readonly sessionId: string; readonly detail: string }
  | { readonly kind: 'grant_revoked'; readonly grantId: string; readonly detail: string };

export async function sendSessionSignal(db: Queryable, signal: SessionSignal): Promise<void> {
  await db.query('select pg_notify($1, $2)', [SESSION_SIGNAL_CHANNEL, JSON.stringify(signal)]);
}

function parseSignal(payload: string | undefined): SessionSignal | null {
  try {
    const value = JSON.parse(payload ?? '') as Partial<SessionSignal> & {
      sessionId?: unknown;
      grantId?: unknown;
      detail?: unknown;
    };
    const detail = typeof value.detail === 'string' ? value.detail : '';
    if (value.kind === 'terminate' && typeof value.sessionId === 'string')
      return { kind: 'terminate', sessionId: value.sessionId, detail };
    if (value.kind === 'grant_revoked' && typeof value.grantId === 'string')
      return { kind: 'grant_revoked', grantId: value.grantId, detail };
  } catch {
    // ignored below
  }
  return null;
}

/** Holds one pooled connection in LISTEN; reconnects with backoff if it drops. */
export class SessionSignalListener {
  #client: PoolClient | null = null;
  #closed = false;
  #retryMs = 250;

  constructor(
    private readonly ctx: BrokerContext,
    private readonly onSignal: (signal: SessionSignal) => void,
  ) {}

  async start(): Promise<void> {
    if (this.#closed) return;
    try {
      const client = await this.ctx.pool.connect();
      client.on('notification', (message) => {
        if (message.channel !== SESSION_SIGNAL_CHANNEL) return;
        const signal = parseSignal(message.payload);
        if (signal !== null) this.onSignal(signal);
      });
      client.on('error', (err) => {
        this.ctx.log.warn({ err: err.message }, 'session signal listener lost its connection');
        this.#reconnect(client, err);
      });
      await client.query(`listen ${SESSION_SIGNAL_CHANNEL}`);
      this.#client = client;
      this.#retryMs = 250;
    } catch (err) {
      this.ctx.log.warn(
        { err: (err as Error).message },
        'session signal listener cannot connect; retrying',
      );
      setTimeout(() => void this.start(), this.#retryMs).unref();
      this.#retryMs = Math.min(this.#retryMs * 2, 5_000);
    }
  }

  #reconnect(client: PoolClient, err: Error): void {
    if (this.#client !== client) return;
    this.#client = null;
    client.release(err);
    if (!this.#closed) setTimeout(() => void this.start(), this.#retryMs).unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = null;
    if (client !== null) {
      await client.query(`unlisten ${SESSION_SIGNAL_CHANNEL}`).catch(() => undefined);
      client.release();
    }
  }
}
