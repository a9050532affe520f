import type { BrokerContext } from '../context.js';
import type { EndReason } from '../features/sessions/repository.js';
import type { LiveSession } from './live-session.js';
import { PendingSessionEnds, type SessionEndRecord } from './session-end.js';
import type { SessionSignal } from './signals.js';

/**
 * The live sessions of this replica, and the one supervisor loop that
 * enforces time on all of them (warnings, expiry, idle) — no timer per
 * session, and deterministic under an injected clock.
 */
export class SessionRegistry {
  readonly #sessions = new Map<string, LiveSession>();
  readonly #pendingEnds: PendingSessionEnds;
  #ticks = 0;

  /** `pendingEndsDir`: where end records wait on disk while the audit store is down. */
  constructor(
    private readonly ctx: BrokerContext,
    pendingEndsDir: string | null = null,
  ) {
    this.#pendingEnds = new PendingSessionEnds(ctx, pendingEndsDir);
  }

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

  deferEnd(end: SessionEndRecord): Promise<void> {
    return this.#pendingEnds.add(end);
  }

  get pendingEndRecords(): number {
    return this.#pendingEnds.size;
  }

  /**
   * At start, before the orphan sweep: records the ends a previous run of this
   * broker could not write, with their real reasons. Returns how many it found.
   */
  async recordEndsLeftByPreviousRun(): Promise<number> {
    const found = await this.#pendingEnds.load();
    await this.#pendingEnds.retry();
    return found;
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
    if (this.#pendingEnds.size > 0) await this.#pendingEnds.retry();
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

  async endAll(reason: EndReason): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((s) => s.end(reason)));
  }
}
