import { hostname } from 'node:os';
import { withTransaction } from '@airlock/db';
import { audit } from '../audit.js';
import type { BrokerContext } from '../context.js';

export const HEARTBEAT_MS = 5_000;

/** A replica silent this long is taken as crashed (AIRLOCK_INSTANCE_STALE_SECONDS). */
export function staleAfterMs(ctx: BrokerContext): number {
  return ctx.config.instanceStaleSeconds * 1000;
}

/** Often enough that a live replica is never taken as crashed: three beats per stale period. */
export function heartbeatMs(ctx: BrokerContext): number {
  return Math.min(HEARTBEAT_MS, Math.floor(staleAfterMs(ctx) / 3));
}

export async function announceInstance(ctx: BrokerContext, instanceId: string): Promise<void> {
  const now = ctx.clock.now();
  await ctx.pool.query(
    `insert into broker_instances (id, hostname, started_at, last_seen_at) values ($1, $2, $3, $3)
     on conflict (id) do update set last_seen_at = excluded.last_seen_at`,
    [instanceId, hostname(), now],
  );
}

export async function retireInstance(ctx: BrokerContext, instanceId: string): Promise<void> {
  await ctx.pool.query(
    'update broker_instances set stopped_at = $2, last_seen_at = $2 where id = $1',
    [instanceId, ctx.clock.now()],
  );
}

/**
 * Closes sessions left open by replicas that stopped without closing them
 * (a crash, a kill -9): they end with `broker_shutdown`, audited, so no
 * session stays "live" in the record forever.
 */
export async function closeOrphanedSessions(ctx: BrokerContext, selfId: string): Promise<number> {
  const now = ctx.clock.now();
  const { rows } = await ctx.pool.query<{ id: string; broker_instance: string }>(
    `select s.id, s.broker_instance from sessions s
       left join broker_instances b on b.id = s.broker_instance
      where s.ended_at is null and s.broker_instance <> $1
        and (b.id is null or b.stopped_at is not null or b.last_seen_at < $2)`,
    [selfId, new Date(now.getTime() - staleAfterMs(ctx))],
  );
  for (const row of rows) {
    await withTransaction(ctx.pool, async (client) => {
      const { rowCount } = await client.query(
        `update sessions set ended_at = $2, end_reason = 'broker_shutdown', end_detail = $3 where id = $1 and ended_at is null`,
        [row.id, now, `the broker replica ${row.broker_instance} stopped without closing it`],
      );
      if (rowCount !== 1) return;
      await audit(client, ctx, {
        type: 'session.end',
        actor: { kind: 'system' },
        subjectId: row.id,
        data: {
          reason: 'broker_shutdown',
          detail: 'recovered after the carrying replica stopped',
          instance: row.broker_instance,
        },
      });
    });
  }
  return rows.length;
}
