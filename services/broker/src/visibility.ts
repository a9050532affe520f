import type { Queryable } from '@airlock/db';
import { AppError } from '@airlock/domain';
import type { BrokerContext } from './context.js';
import { zonesApprovedBy } from './features/zones/repository.js';
import { hasRole, type Principal } from './principal.js';

/**
 * What a principal may read of requests, grants and sessions: a vendor its
 * own (`userId`), an approver its zones' (`zoneIds`), both for a user who is
 * both. `undefined` means everything (admins and auditors).
 */
export interface Visibility {
  readonly userId: string | null;
  readonly zoneIds: readonly string[];
}

export async function visibilityOf(
  ctx: BrokerContext,
  principal: Principal,
): Promise<Visibility | undefined> {
  if (hasRole(principal, 'admin', 'auditor')) return undefined;
  return {
    userId: hasRole(principal, 'vendor') ? principal.userId : null,
    zoneIds: hasRole(principal, 'approver')
      ? await zonesApprovedBy(ctx.pool, principal.userId)
      : [],
  };
}

/**
 * Acting on a live grant or session (revoke, terminate) is for admins and for
 * the approvers of its zone.
 */
export async function requireZoneControl(
  db: Queryable,
  principal: Principal,
  zoneId: string,
): Promise<void> {
  if (hasRole(principal, 'admin')) return;
  const zones = hasRole(principal, 'approver') ? await zonesApprovedBy(db, principal.userId) : [];
  if (!zones.includes(zoneId)) throw new AppError('access_request.not_zone_approver');
}
