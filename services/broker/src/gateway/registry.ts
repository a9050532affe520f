import type { BrokerContext } from '../context.js';
import type { EndReason } from '../features/sessions/repository.js';
import type { LiveSession } from './live-session.js';
import type { SessionSignal } from './signals.js';

/**
 * The live sessions of this replica, and the one supervisor loop that
 * enforces time on all of them (warnings, expiry, idle) — no timer per
 * session, and deterministic under an injected clock.
 */
export class SessionRegistry {
  readonly #sessions = new Map<string, LiveSession>();
  readonly #deferredEnds: (() => Promise<void>)[] = [];
  #ticks = 0;

  constructor(private readonly ctx: BrokerContext) {}

  get size(): number {
    return this.#sessions.size;
  }

  add(session: LiveSession): void {
    this.#sessions.set(session.id, session);
  }

  remove(session: LiveSession): void {
    this.#sessions.delete(session.id);
  }

  get(sessionId: string): LiveSession | undefined {
    return this.#sessions.get(sessionId);
  }

  list(): LiveSession[] {
    return [...this.#sessions.values()];
  }

  deferEnd(write: () => Promise<void>): void {
    this.#deferredEnds.push(write);
  }

  get pendingEndRecords(): number {
    return this.#deferredEnds.length;
  }

  onSignal(signal: SessionSignal): void {
    if (signal.kind === 'terminate') {
      void this.#sessions.get(signal.sessionId)?.end('terminated', signal.detail || null);
      return;
    }
    for (const session of this.#sessions.values()) {
      if (session.grant.id === signal.grantId) void session.end('revoked', signal.detail || null);
    }
  }

  /** One pass of the supervisor; runs every 250 ms in production, on demand in tests. */
  async tick(): Promise<void> {
    const now = this.ctx.clock.now();
    for (const session of this.#sessions.values()) session.tick(now);
    this.#ticks += 1;
    // Backstop for a lost NOTIFY: once a second, ask the database about revocations.
    if (this.#ticks % 4 === 0 && this.#sessions.size > 0) await this.#checkRevocations();
    if (this.#deferredEnds.length > 0) await this.#retryDeferredEnds();
  }

  async #checkRevocations(): Promise<void> {
    const grantIds = [...new Set([...this.#sessions.values()].map((s) => s.grant.id))];
    try {
      const { rows } = await this.ctx.pool.query<{ id: string; revoke_reason: string | null }>(
        'select id, revoke_reason from grants where id = any ($1) and revoked_at is not null',
        [grantIds],
      );
      for (const row of rows)
        this.onSignal({ kind: 'grant_revoked', grantId: row.id, detail: row.revoke_reason ?? '' });
    } catch (err) {
      this.ctx.log.warn({ err: (err as Error).message }, 'revocation check failed');
    }
  }

  async #retryDeferredEnds(): Promise<void> {
    while (this.#deferredEnds.length > 0) {
      const write = this.#deferredEnds[0];
      if (write === undefined) break;
      try {
        await write();
        this.#deferredEnds.shift();
      } catch {
        return; // the store is still down; try again next tick
      }
    }
  }

  async endAll(reason: EndReason): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((s) => s.end(reason)));
  }
}
