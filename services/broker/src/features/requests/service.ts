import { withTransaction } from '@airlock/db';
import {
  AppError,
  checkNarrowing,
  checkRequestAgainstPolicies,
  effectiveGrantWindow,
  MINUTE_MS,
  newId,
  resolveRequestedWindow,
  zonesShortOfQuorum,
  type Capability,
  type ErrorCode,
  type Interval,
} from '@airlock/domain';
import { cancelJobs, scheduleJob, type JobHandler } from '@airlock/jobs';
import { audit, auditAlone } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import { visibilityOf } from '../../visibility.js';
import { notifyUsers } from '../../notifications/notify.js';
import { actorOf, hasRole, type Principal } from '../../principal.js';
import { findAssetsByIds } from '../assets/repository.js';
import { createGrantIn } from '../grants/service.js';
import { findZonesByIds, zonesApprovedBy } from '../zones/repository.js';
import {
  findRequests,
  insertApprovals,
  insertRequest,
  lockRequest,
  setRequestStatus,
  type AccessRequestRecord,
} from './repository.js';

export const EXPIRE_REQUEST_JOB = 'access_request.expire';
const expireJobKey = (id: string): string => `${EXPIRE_REQUEST_JOB}:${id}`;

export interface NewAccessRequest {
  readonly assetIds: readonly string[];
  readonly startsAt?: Date | undefined;
  readonly endsAt?: Date | undefined;
  readonly durationMinutes?: number | undefined;
  readonly reason: string;
  readonly ticket?: string | undefined;
  readonly capabilities?: readonly Capability[] | undefined;
}

export async function getVisibleRequest(
  ctx: BrokerContext,
  principal: Principal,
  id: string,
): Promise<AccessRequestRecord> {
  const [request] = await findRequests(ctx.pool, {
    ids: [id],
    visibleTo: await visibilityOf(ctx, principal),
  });
  // Invisible and absent look the same: IDs of others' requests reveal nothing.
  if (request === undefined) throw new AppError('access_request.not_found', { id });
  return request;
}

export async function fileRequest(
  ctx: BrokerContext,
  principal: Principal,
  input: NewAccessRequest,
): Promise<AccessRequestRecord> {
  const now = ctx.clock.now();
  const window = resolveRequestedWindow(input, now);
  const assetIds = [...new Set(input.assetIds)];
  const assets = await findAssetsByIds(ctx.pool, assetIds);
  const missing = assetIds.find((id) => !assets.some((a) => a.id === id));
  if (missing !== undefined) throw new AppError('asset.not_found', { id: missing });
  const zones = await findZonesByIds(ctx.pool, [...new Set(assets.map((a) => a.zoneId))]);
  const capabilities: Capability[] = [...new Set<Capability>(input.capabilities ?? ['shell'])];
  checkRequestAgainstPolicies(window, capabilities, zones);

  // A request nobody decides on lapses; one for a fixed window lapses when the window ends.
  const ttlMinutes = Math.min(...zones.map((z) => z.policy.pendingRequestTtlMinutes));
  let expiresAt = new Date(now.getTime() + ttlMinutes * MINUTE_MS);
  if (window.kind === 'fixed' && window.endsAt < expiresAt) expiresAt = window.endsAt;

  const id = newId('accessRequest');
  await withTransaction(ctx.pool, async (client) => {
    await insertRequest(client, {
      id,
      requesterId: principal.userId,
      window,
      reason: input.reason,
      ticket: input.ticket ?? null,
      capabilities,
      createdAt: now,
      expiresAt,
      assetIds,
      zones: zones.map((z) => ({ zoneId: z.id, requiredApprovals: z.policy.requiredApprovals })),
    });
    await scheduleJob(
      client,
      {
        kind: EXPIRE_REQUEST_JOB,
        payload: { requestId: id },
        runAt: expiresAt,
        dedupeKey: expireJobKey(id),
      },
      ctx.clock,
    );
    await audit(client, ctx, {
      type: 'access_request.created',
      actor: actorOf(principal),
      subjectId: id,
      data: {
        assetIds,
        zoneIds: zones.map((z) => z.id),
        window:
          window.kind === 'fixed'
            ? { startsAt: window.startsAt.toISOString(), endsAt: window.endsAt.toISOString() }
            : { durationMinutes: window.minutes },
        reason: input.reason,
        ticket: input.ticket ?? null,
        capabilities,
        expiresAt: expiresAt.toISOString(),
      },
    });
    await notifyUsers(
      client,
      ctx,
      zones.flatMap((z) => z.approverIds).filter((u) => u !== principal.userId),
      'access_request.created',
      {
        requestId: id,
        requester: principal.username,
        assets: assets.map((a) => a.name),
        reason: input.reason,
        ticket: input.ticket ?? null,
      },
    );
  });
  return getVisibleRequest(ctx, principal, id);
}

const REFUSAL_CODES = new Set<ErrorCode>([
  'access_request.self_approval',
  'access_request.not_zone_approver',
  'access_request.already_decided',
  'access_request.not_pending',
  'access_request.expired',
  'access_request.narrowing_invalid',
]);

/** A refused decision is rolled back, then recorded on its own: refusals are security events. */
async function auditRefusal<T>(
  ctx: BrokerContext,
  principal: Principal,
  requestId: string,
  decision: string,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof AppError && REFUSAL_CODES.has(err.code)) {
      await auditAlone(ctx, {
        type: 'access_request.decision_refused',
        actor: actorOf(principal),
        subjectId: requestId,
        outcome: 'failure',
        data: { decision, reason: err.code },
      });
    }
    throw err;
  }
}

/** The checks every decision passes: DESIGN.md "approval" rules. Returns the deciding zones. */
async function checkDecision(
  ctx: BrokerContext,
  principal: Principal,
  request: AccessRequestRecord,
  now: Date,
): Promise<string[]> {
  if (request.requesterId === principal.userId) throw new AppError('access_request.self_approval');
  const approverZones = hasRole(principal, 'approver')
    ? await zonesApprovedBy(ctx.pool, principal.userId)
    : [];
  const deciding = request.zones.map((z) => z.zoneId).filter((z) => approverZones.includes(z));
  if (deciding.length === 0) throw new AppError('access_request.not_zone_approver');
  if (request.status !== 'pending')
    throw new AppError('access_request.not_pending', { status: request.status });
  if (
    now >= request.expiresAt ||
    (request.window.kind === 'fixed' && now >= request.window.endsAt)
  ) {
    throw new AppError('access_request.expired');
  }
  if (request.approvals.some((a) => a.approverId === principal.userId))
    throw new AppError('access_request.already_decided');
  return deciding;
}

export async function approveRequest(
  ctx: BrokerContext,
  principal: Principal,
  requestId: string,
  input: {
    comment?: string | undefined;
    notBefore?: Date | undefined;
    notAfter?: Date | undefined;
  },
): Promise<AccessRequestRecord> {
  await auditRefusal(ctx, principal, requestId, 'approve', () =>
    withTransaction(ctx.pool, async (client) => {
      const request = await lockRequest(client, requestId);
      const now = ctx.clock.now();
      const deciding = await checkDecision(ctx, principal, request, now);
      const narrowing: Partial<Interval> = {
        ...(input.notBefore === undefined ? {} : { notBefore: input.notBefore }),
        ...(input.notAfter === undefined ? {} : { notAfter: input.notAfter }),
      };
      checkNarrowing(request.window, narrowing, now);
      await insertApprovals(client, {
        requestId,
        approverId: principal.userId,
        zoneIds: deciding,
        decision: 'approve',
        comment: input.comment ?? null,
        notBefore: narrowing.notBefore ?? null,
        notAfter: narrowing.notAfter ?? null,
        decidedAt: now,
      });
      await audit(client, ctx, {
        type: 'access_request.approval_recorded',
        actor: actorOf(principal),
        subjectId: requestId,
        data: {
          zoneIds: deciding,
          comment: input.comment ?? null,
          notBefore: narrowing.notBefore?.toISOString() ?? null,
          notAfter: narrowing.notAfter?.toISOString() ?? null,
        },
      });

      const approvals = [
        ...request.approvals.filter((a) => a.decision === 'approve'),
        ...deciding.map((zoneId) => ({
          zoneId,
          approverId: principal.userId,
          notBefore: narrowing.notBefore ?? null,
          notAfter: narrowing.notAfter ?? null,
        })),
      ];
      const short = zonesShortOfQuorum(request.zones, approvals);
      if (short.length > 0) return;

      const window = effectiveGrantWindow(
        request.window,
        approvals.map((a) => ({
          ...(a.notBefore === null ? {} : { notBefore: a.notBefore }),
          ...(a.notAfter === null ? {} : { notAfter: a.notAfter }),
        })),
        now,
      );
      if (window.notAfter <= window.notBefore || window.notAfter <= now) {
        throw new AppError('access_request.narrowing_invalid', {
          detail: 'together, the approvers’ windows leave no time',
        });
      }
      await setRequestStatus(client, requestId, 'approved', now, null);
      await cancelJobs(client, [expireJobKey(requestId)]);
      const grantIds: string[] = [];
      for (const asset of request.assets) {
        grantIds.push(
          await createGrantIn(
            client,
            ctx,
            {
              requestId,
              userId: request.requesterId,
              assetId: asset.id,
              zoneId: asset.zoneId,
              notBefore: window.notBefore,
              notAfter: window.notAfter,
              capabilities: request.capabilities,
            },
            principal.userId,
          ),
        );
      }
      await audit(client, ctx, {
        type: 'access_request.approved',
        actor: actorOf(principal),
        subjectId: requestId,
        data: {
          grantIds,
          notBefore: window.notBefore.toISOString(),
          notAfter: window.notAfter.toISOString(),
        },
      });
      await notifyUsers(client, ctx, [request.requesterId], 'access_request.approved', {
        requestId,
        grantIds,
        notBefore: window.notBefore.toISOString(),
        notAfter: window.notAfter.toISOString(),
      });
    }),
  );
  return getVisibleRequest(ctx, principal, requestId);
}

/** Any deny denies. */
export async function denyRequest(
  ctx: BrokerContext,
  principal: Principal,
  requestId: string,
  reason: string,
): Promise<AccessRequestRecord> {
  await auditRefusal(ctx, principal, requestId, 'deny', () =>
    withTransaction(ctx.pool, async (client) => {
      const request = await lockRequest(client, requestId);
      const now = ctx.clock.now();
      const deciding = await checkDecision(ctx, principal, request, now);
      await insertApprovals(client, {
        requestId,
        approverId: principal.userId,
        zoneIds: deciding,
        decision: 'deny',
        comment: reason,
        notBefore: null,
        notAfter: null,
        decidedAt: now,
      });
      await setRequestStatus(client, requestId, 'denied', now, reason);
      await cancelJobs(client, [expireJobKey(requestId)]);
      await audit(client, ctx, {
        type: 'access_request.denied',
        actor: actorOf(principal),
        subjectId: requestId,
        data: { reason, zoneIds: deciding },
      });
      await notifyUsers(client, ctx, [request.requesterId], 'access_request.denied', {
        requestId,
        reason,
      });
    }),
  );
  return getVisibleRequest(ctx, principal, requestId);
}

export async function cancelRequest(
  ctx: BrokerContext,
  principal: Principal,
  requestId: string,
): Promise<AccessRequestRecord> {
  await getVisibleRequest(ctx, principal, requestId);
  await withTransaction(ctx.pool, async (client) => {
    const request = await lockRequest(client, requestId);
    if (request.requesterId !== principal.userId)
      throw new AppError('access_request.not_found', { id: requestId });
    if (request.status !== 'pending')
      throw new AppError('access_request.not_pending', { status: request.status });
    await setRequestStatus(
      client,
      requestId,
      'cancelled',
      ctx.clock.now(),
      'cancelled by the requester',
    );
    await cancelJobs(client, [expireJobKey(requestId)]);
    await audit(client, ctx, {
      type: 'access_request.cancelled',
      actor: actorOf(principal),
      subjectId: requestId,
    });
  });
  return getVisibleRequest(ctx, principal, requestId);
}

export function requestJobHandlers(ctx: BrokerContext): Record<string, JobHandler> {
  return {
    [EXPIRE_REQUEST_JOB]: async (payload) => {
      const requestId = String(payload.requestId);
      await withTransaction(ctx.pool, async (client) => {
        const request = await lockRequest(client, requestId);
        const now = ctx.clock.now();
        if (request.status !== 'pending' || now < request.expiresAt) return;
        await setRequestStatus(
          client,
          requestId,
          'expired',
          now,
          'no decision before the request expired',
        );
        await audit(client, ctx, {
          type: 'access_request.expired',
          actor: { kind: 'system' },
          subjectId: requestId,
          data: { expiresAt: request.expiresAt.toISOString() },
        });
        await notifyUsers(client, ctx, [request.requesterId], 'access_request.expired', {
          requestId,
        });
      });
    },
  };
}
