import { withTransaction, type PoolClient } from '@airlock/db';
import { AppError, grantStatusAt, MINUTE_MS, newId, type Capability } from '@airlock/domain';
import { cancelJobs, scheduleJob, type JobHandler } from '@airlock/jobs';
import { audit, auditAlone } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import { sendSessionSignal } from '../../gateway/signals.js';
import { notifyUsers } from '../../notifications/notify.js';
import { actorOf, type Principal } from '../../principal.js';
import { requireZoneControl } from '../../visibility.js';
import {
  getGrant,
  insertGrant,
  markGrant,
  revokeGrantRow,
  type GrantRecord,
} from './repository.js';

/** Warnings before a grant ends (the SSH gateway shows them in the vendor's terminal too). */
export const GRANT_WARNING_MINUTES = [5, 1] as const;

export const GRANT_JOBS = {
  activate: 'grant.activate',
  warn: 'grant.warn',
  expire: 'grant.expire',
} as const;

function grantJobKeys(grantId: string): string[] {
  return [
    `${GRANT_JOBS.activate}:${grantId}`,
    ...GRANT_WARNING_MINUTES.map((m) => `${GRANT_JOBS.warn}:${m}:${grantId}`),
    `${GRANT_JOBS.expire}:${grantId}`,
  ];
}

/** Creates a grant and its lifecycle jobs inside the approving transaction. */
export async function createGrantIn(
  client: PoolClient,
  ctx: BrokerContext,
  g: {
    requestId: string;
    userId: string;
    assetId: string;
    zoneId: string;
    notBefore: Date;
    notAfter: Date;
    capabilities: readonly Capability[];
  },
  approverId: string,
): Promise<string> {
  const id = newId('grant');
  await insertGrant(client, { ...g, id, createdAt: ctx.clock.now() });
  await scheduleJob(
    client,
    {
      kind: GRANT_JOBS.activate,
      payload: { grantId: id },
      runAt: g.notBefore,
      dedupeKey: `${GRANT_JOBS.activate}:${id}`,
    },
    ctx.clock,
  );
  for (const minutes of GRANT_WARNING_MINUTES) {
    const at = new Date(g.notAfter.getTime() - minutes * MINUTE_MS);
    if (at > g.notBefore) {
      await scheduleJob(
        client,
        {
          kind: GRANT_JOBS.warn,
          payload: { grantId: id, minutes },
          runAt: at,
          dedupeKey: `${GRANT_JOBS.warn}:${minutes}:${id}`,
        },
        ctx.clock,
      );
    }
  }
  await scheduleJob(
    client,
    {
      kind: GRANT_JOBS.expire,
      payload: { grantId: id },
      runAt: g.notAfter,
      dedupeKey: `${GRANT_JOBS.expire}:${id}`,
    },
    ctx.clock,
  );
  await audit(client, ctx, {
    type: 'grant.created',
    actor: { kind: 'user', id: approverId },
    subjectId: id,
    data: {
      requestId: g.requestId,
      userId: g.userId,
      assetId: g.assetId,
      zoneId: g.zoneId,
      notBefore: g.notBefore.toISOString(),
      notAfter: g.notAfter.toISOString(),
      capabilities: [...g.capabilities],
    },
  });
  return id;
}

/** Revocation: by an admin, or by an approver of the grant's zone. */
export async function revokeGrant(
  ctx: BrokerContext,
  principal: Principal,
  grantId: string,
  reason: string,
): Promise<GrantRecord> {
  try {
    return await withTransaction(ctx.pool, async (client) => {
      const grant = await getGrant(client, grantId, { forUpdate: true });
      const now = ctx.clock.now();
      await requireZoneControl(client, principal, grant.zoneId);
      const status = grantStatusAt(grant, now);
      if (status === 'revoked') throw new AppError('grant.already_revoked');
      if (status === 'expired') throw new AppError('grant.already_expired');
      await revokeGrantRow(client, grantId, principal.userId, reason, now);
      await cancelJobs(client, grantJobKeys(grantId));
      await audit(client, ctx, {
        type: 'grant.revoked',
        actor: actorOf(principal),
        subjectId: grantId,
        data: {
          reason,
          userId: grant.userId,
          assetId: grant.assetId,
          wasActive: status === 'active',
        },
      });
      await notifyUsers(client, ctx, [grant.userId], 'grant.revoked', {
        grantId,
        asset: grant.assetName,
        reason,
      });
      // Delivered on commit to every replica: live sessions under this grant end within a second.
      await sendSessionSignal(client, { kind: 'grant_revoked', grantId, detail: reason });
      return getGrant(client, grantId);
    });
  } catch (err) {
    if (err instanceof AppError && err.code !== 'grant.not_found') {
      await auditAlone(ctx, {
        type: 'grant.revoke_refused',
        actor: actorOf(principal),
        subjectId: grantId,
        outcome: 'failure',
        data: { reason: err.code },
      });
    }
    throw err;
  }
}

/**
 * Lifecycle jobs. Each is idempotent: it re-reads the grant and does nothing
 * when the step already happened or the grant was revoked since.
 */
export function grantJobHandlers(ctx: BrokerContext): Record<string, JobHandler> {
  const system = { kind: 'system' } as const;
  const step =
    (
      column: 'activated_at' | 'expired_at',
      type: 'grant.activated' | 'grant.expired',
    ): JobHandler =>
    async (payload) => {
      const grantId = String(payload.grantId);
      await withTransaction(ctx.pool, async (client) => {
        const grant = await getGrant(client, grantId, { forUpdate: true });
        const now = ctx.clock.now();
        if (!(await markGrant(client, grantId, column, now))) return;
        await audit(client, ctx, {
          type,
          actor: system,
          subjectId: grantId,
          data: {
            userId: grant.userId,
            assetId: grant.assetId,
            notBefore: grant.notBefore.toISOString(),
            notAfter: grant.notAfter.toISOString(),
          },
        });
        await notifyUsers(client, ctx, [grant.userId], type, {
          grantId,
          asset: grant.assetName,
          notAfter: grant.notAfter.toISOString(),
        });
      });
    };
  return {
    [GRANT_JOBS.activate]: step('activated_at', 'grant.activated'),
    [GRANT_JOBS.expire]: step('expired_at', 'grant.expired'),
    [GRANT_JOBS.warn]: async (payload) => {
      const grantId = String(payload.grantId);
      const minutes = Number(payload.minutes);
      await withTransaction(ctx.pool, async (client) => {
        const grant = await getGrant(client, grantId, { forUpdate: true });
        if (grantStatusAt(grant, ctx.clock.now()) !== 'active') return;
        await audit(client, ctx, {
          type: 'grant.expiring',
          actor: system,
          subjectId: grantId,
          data: { minutesLeft: minutes, notAfter: grant.notAfter.toISOString() },
        });
        await notifyUsers(client, ctx, [grant.userId], 'grant.expiring', {
          grantId,
          asset: grant.assetName,
          minutesLeft: minutes,
        });
      });
    },
  };
}
