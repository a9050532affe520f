import type { Visibility } from '../../visibility.js';
import type { Queryable } from '@airlock/db';
import { AppError, type Capability } from '@airlock/domain';

export interface GrantRecord {
  readonly id: string;
  readonly requestId: string;
  readonly userId: string;
  readonly username: string;
  readonly assetId: string;
  readonly assetName: string;
  readonly zoneId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly capabilities: readonly Capability[];
  readonly createdAt: Date;
  readonly activatedAt: Date | null;
  readonly expiredAt: Date | null;
  readonly revokedAt: Date | null;
  readonly revokedBy: string | null;
  readonly revokeReason: string | null;
}

interface GrantRow {
  id: string;
  request_id: string;
  user_id: string;
  username: string;
  asset_id: string;
  asset_name: string;
  zone_id: string;
  not_before: Date;
  not_after: Date;
  capabilities: Capability[];
  created_at: Date;
  activated_at: Date | null;
  expired_at: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
  revoke_reason: string | null;
}

const fromRow = (r: GrantRow): GrantRecord => ({
  id: r.id,
  requestId: r.request_id,
  userId: r.user_id,
  username: r.username,
  assetId: r.asset_id,
  assetName: r.asset_name,
  zoneId: r.zone_id,
  notBefore: r.not_before,
  notAfter: r.not_after,
  capabilities: r.capabilities,
  createdAt: r.created_at,
  activatedAt: r.activated_at,
  expiredAt: r.expired_at,
  revokedAt: r.revoked_at,
  revokedBy: r.revoked_by,
  revokeReason: r.revoke_reason,
});

export async function insertGrant(
  db: Queryable,
  g: {
    id: string;
    requestId: string;
    userId: string;
    assetId: string;
    zoneId: string;
    notBefore: Date;
    notAfter: Date;
    capabilities: readonly Capability[];
    createdAt: Date;
  },
): Promise<void> {
  await db.query(
    `insert into grants (id, request_id, user_id, asset_id, zone_id, not_before, not_after, capabilities, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      g.id,
      g.requestId,
      g.userId,
      g.assetId,
      g.zoneId,
      g.notBefore,
      g.notAfter,
      g.capabilities,
      g.createdAt,
    ],
  );
}

export interface GrantFilter {
  readonly ids?: readonly string[];
  readonly userId?: string | undefined;
  readonly assetId?: string | undefined;
  /** Only grants in force at this instant (inside the window, not revoked). */
  readonly activeAt?: Date | undefined;
  readonly visibleTo?: Visibility | undefined;
  readonly limit?: number;
}

export async function findGrants(
  db: Queryable,
  filter: GrantFilter,
  options: { forUpdate?: boolean } = {},
): Promise<GrantRecord[]> {
  const { rows } = await db.query<GrantRow>(
    `select g.*, u.username, a.name as asset_name
       from grants g join users u on u.id = g.user_id join assets a on a.id = g.asset_id
      where ($1::text[] is null or g.id = any ($1))
        and ($2::text is null or g.user_id = $2)
        and ($3::text is null or g.asset_id = $3)
        and ($4::timestamptz is null or (g.revoked_at is null and g.not_before <= $4 and $4 < g.not_after))
        and ($5::boolean is false or g.user_id = $6 or g.zone_id = any ($7::text[]))
      order by g.not_before desc, g.id
      limit $8
      ${options.forUpdate === true ? 'for update of g' : ''}`,
    [
      filter.ids === undefined ? null : [...filter.ids],
      filter.userId ?? null,
      filter.assetId ?? null,
      filter.activeAt ?? null,
      filter.visibleTo !== undefined,
      filter.visibleTo?.userId ?? null,
      filter.visibleTo?.zoneIds ?? [],
      filter.limit ?? 500,
    ],
  );
  return rows.map(fromRow);
}

export async function getGrant(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<GrantRecord> {
  const [grant] = await findGrants(db, { ids: [id] }, options);
  if (grant === undefined) throw new AppError('grant.not_found', { id });
  return grant;
}

export async function markGrant(
  db: Queryable,
  id: string,
  column: 'activated_at' | 'expired_at',
  at: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update grants set ${column} = $2 where id = $1 and ${column} is null and revoked_at is null`,
    [id, at],
  );
  return rowCount === 1;
}

export async function revokeGrantRow(
  db: Queryable,
  id: string,
  by: string,
  reason: string,
  at: Date,
): Promise<void> {
  await db.query(
    'update grants set revoked_at = $2, revoked_by = $3, revoke_reason = $4 where id = $1 and revoked_at is null',
    [id, at, by, reason],
  );
}
