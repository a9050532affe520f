import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withTransaction } from '@airlock/db';
import { isIdOf } from '@airlock/domain';
import { audit } from '../audit.js';
import type { BrokerContext } from '../context.js';
import { endSessionRow, type EndReason } from '../features/sessions/repository.js';

/** Everything the end of a session records: plain data, so it can wait on disk. */
export interface SessionEndRecord {
  readonly sessionId: string;
  /** ISO 8601: when the session really ended, not when the record got written. */
  readonly endedAt: string;
  readonly reason: EndReason;
  readonly detail: string | null;
  readonly asset: string;
  readonly userId: string;
  readonly durationMs: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly recordingChunks: number;
  readonly recordingHead: string | null;
}

/** The session row's end and its `session.end` event, in one transaction; a no-op once recorded. */
export async function writeSessionEnd(ctx: BrokerContext, end: SessionEndRecord): Promise<void> {
  await withTransaction(ctx.pool, async (client) => {
    const recorded = await endSessionRow(client, end.sessionId, {
      endedAt: new Date(end.endedAt),
      reason: end.reason,
      detail: end.detail,
      bytesFromClient: end.bytesFromClient,
      bytesToClient: end.bytesToClient,
      chunks: end.recordingChunks,
      head: end.recordingHead,
    });
    if (!recorded) return;
    await audit(client, ctx, {
      type: 'session.end',
      actor: { kind: 'system' },
      subjectId: end.sessionId,
      data: {
        reason: end.reason,
        detail: end.detail,
        asset: end.asset,
        userId: end.userId,
        durationMs: end.durationMs,
        bytesFromClient: end.bytesFromClient,
        bytesToClient: end.bytesToClient,
        recordingChunks: end.recordingChunks,
        recordingHead: end.recordingHead,
      },
    });
  });
}

/**
 * End records that could not be written because the audit store was down.
 * They are retried until the store is back, and — when a directory is given —
 * also kept on disk, so that a broker restarted before the store returned
 * still records the real reason (`audit_failure`, DESIGN invariant 3) rather
 * than the orphan sweep's `broker_shutdown`. Replaying is idempotent: a
 * session already ended is left as it is.
 */
export class PendingSessionEnds {
  readonly #pending = new Map<string, SessionEndRecord>();

  constructor(
    private readonly ctx: BrokerContext,
    private readonly dir: string | null,
  ) {}

  get size(): number {
    return this.#pending.size;
  }

  async add(end: SessionEndRecord): Promise<void> {
    this.#pending.set(end.sessionId, end);
    if (this.dir === null || !isIdOf('session', end.sessionId)) return;
    const file = join(this.dir, `${end.sessionId}.json`);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(`${file}.tmp`, `${JSON.stringify(end)}\n`, { mode: 0o600, flush: true });
      await rename(`${file}.tmp`, file);
    } catch (err) {
      this.ctx.log.error(
        { err, sessionId: end.sessionId },
        'a pending session end could not be kept on disk; it is lost if the broker stops first',
      );
    }
  }

  /** Reads the records a previous run of this broker left on disk. */
  async load(): Promise<number> {
    if (this.dir === null) return 0;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let loaded = 0;
    for (const name of names) {
      if (!name.endsWith('.json') || !isIdOf('session', name.slice(0, -5))) continue;
      try {
        const end = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as SessionEndRecord;
        if (end.sessionId !== name.slice(0, -5)) throw new Error('names another session');
        this.#pending.set(end.sessionId, end);
        loaded += 1;
      } catch (err) {
        this.ctx.log.error({ err, file: name }, 'unreadable pending session end; left in place');
      }
    }
    return loaded;
  }

  /** Writes what it can, oldest first; stops at the first failure (the store is still down). */
  async retry(): Promise<void> {
    for (const end of [...this.#pending.values()]) {
      try {
        await writeSessionEnd(this.ctx, end);
      } catch {
        return;
      }
      this.#pending.delete(end.sessionId);
      if (this.dir !== null)
        await rm(join(this.dir, `${end.sessionId}.json`), { force: true }).catch((err: unknown) =>
          this.ctx.log.warn({ err, sessionId: end.sessionId }, 'could not remove a recorded end'),
        );
    }
  }
}
