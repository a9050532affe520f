import type { Visibility } from '../../visibility.js';
import type { Queryable } from '@airlock/db';
import {
  AppError,
  type Capability,
  type RequestedWindow,
  type RequestStatus,
} from '@airlock/domain';

export interface ApprovalRecord {
  readonly approverId: string;
  readonly approverUsername: string;
  readonly zoneId: string;
  readonly decision: 'approve' | 'deny';
  readonly comment: string | null;
  readonly notBefore: Date | null;
  readonly notAfter: Date | null;
  readonly decidedAt: Date;
}

export interface RequestZone {
  readonly zoneId: string;
  readonly zoneName: string;
  readonly requiredApprovals: number;
}

export interface AccessRequestRecord {
  readonly id: string;
  readonly requesterId: string;
  readonly requesterUsername: string;
  readonly requesterOrganization: string | null;
  readonly status: RequestStatus;
  readonly window: RequestedWindow;
  readonly reason: string;
  readonly ticket: string | null;
  readonly capabilities: readonly Capability[];
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly decidedAt: Date | null;
  readonly decisionReason: string | null;
  readonly assets: readonly {
    readonly id: string;
    readonly name: string;
    readonly zoneId: string;
  }[];
  readonly zones: readonly RequestZone[];
  readonly approvals: readonly ApprovalRecord[];
  readonly grantIds: readonly string[];
}

interface RequestRow {
  id: string;
  requester_id: string;
  requester_username: string;
  requester_organization: string | null;
  status: RequestStatus;
  window_kind: 'fixed' | 'duration';
  starts_at: Date | null;
  ends_at: Date | null;
  duration_minutes: number | null;
  reason: string;
  ticket: string | null;
  capabilities: Capability[];
  created_at: Date;
  expires_at: Date;
  decided_at: Date | null;
  decision_reason: string | null;
}

function windowOf(r: RequestRow): RequestedWindow {
  if (r.window_kind === 'duration') return { kind: 'duration', minutes: r.duration_minutes ?? 0 };
  if (r.starts_at === null || r.ends_at === null)
    throw new Error(`request ${r.id}: fixed window without bounds`);
  return { kind: 'fixed', startsAt: r.starts_at, endsAt: r.ends_at };
}

export async function insertRequest(
  db: Queryable,
  r: {
    id: string;
    requesterId: string;
    window: RequestedWindow;
    reason: string;
    ticket: string | null;
    capabilities: readonly Capability[];
    createdAt: Date;
    expiresAt: Date;
    assetIds: readonly string[];
    zones: readonly { zoneId: string; requiredApprovals: number }[];
  },
): Promise<void> {
  const w = r.window;
  await db.query(
    `insert into access_requests (id, requester_id, status, window_kind, starts_at, ends_at, duration_minutes,
                                  reason, ticket, capabilities, created_at, expires_at)
     values ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      r.id,
      r.requesterId,
      w.kind,
      w.kind === 'fixed' ? w.startsAt : null,
      w.kind === 'fixed' ? w.endsAt : null,
      w.kind === 'duration' ? w.minutes : null,
      r.reason,
      r.ticket,
      r.capabilities,
      r.createdAt,
      r.expiresAt,
    ],
  );
  await db.query(
    'insert into access_request_assets (request_id, asset_id) select $1, unnest($2::text[])',
    [r.id, r.assetIds],
  );
  await db.query(
    `insert into access_request_zones (request_id, zone_id, required_approvals)
     select $1, z.zone_id, z.required from unnest($2::text[], $3::int[]) as z(zone_id, required)`,
    [r.id, r.zones.map((z) => z.zoneId), r.zones.map((z) => z.requiredApprovals)],
  );
}

export interface RequestFilter {
  readonly ids?: readonly string[];
  readonly status?: RequestStatus | undefined;
  /** Restricts to what a principal may see: own requests and/or requests touching these zones. */
  readonly visibleTo?: Visibility | undefined;
  readonly limit?: number;
}

export async function findRequests(
  db: Queryable,
  filter: RequestFilter,
): Promise<AccessRequestRecord[]> {
  const { rows } = await db.query<RequestRow>(
    `select r.*, u.username as requester_username, o.name as requester_organization
       from access_requests r
       join users u on u.id = r.requester_id
       left join organizations o on o.id = u.organization_id
      where ($1::text[] is null or r.id = any ($1))
        and ($2::text is null or r.status = $2)
        and ($3::boolean is false
             or r.requester_id = $4
             or exists (select 1 from access_request_zones rz where rz.request_id = r.id and rz.zone_id = any ($5::text[])))
      order by r.created_at desc, r.id
      limit $6`,
    [
      filter.ids === undefined ? null : [...filter.ids],
      filter.status ?? null,
      filter.visibleTo !== undefined,
      filter.visibleTo?.userId ?? null,
      filter.visibleTo?.zoneIds ?? [],
      filter.limit ?? 500,
    ],
  );
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  // Sequential, not Promise.all: `db` may be one client inside a transaction.
  const assets = await db.query<{ request_id: string; id: string; name: string; zone_id: string }>(
    `select ra.request_id, a.id, a.name, a.zone_id from access_request_assets ra join assets a on a.id = ra.asset_id
        where ra.request_id = any ($1) order by a.name`,
    [ids],
  );
  const zones = await db.query<{
    request_id: string;
    zone_id: string;
    name: string;
    required_approvals: number;
  }>(
    `select rz.request_id, rz.zone_id, z.name, rz.required_approvals from access_request_zones rz join zones z on z.id = rz.zone_id
        where rz.request_id = any ($1) order by z.name`,
    [ids],
  );
  const approvals = await db.query<{
    request_id: string;
    approver_id: string;
    username: string;
    zone_id: string;
    decision: 'approve' | 'deny';
    comment: string | null;
    not_before: Date | null;
    not_after: Date | null;
    decided_at: Date;
  }>(
    `select ap.*, u.username from approvals ap join users u on u.id = ap.approver_id
        where ap.request_id = any ($1) order by ap.decided_at, ap.approver_id, ap.zone_id`,
    [ids],
  );
  const grants = await db.query<{ request_id: string; id: string }>(
    'select request_id, id from grants where request_id = any ($1) order by id',
    [ids],
  );
  return rows.map((r) => ({
    id: r.id,
    requesterId: r.requester_id,
    requesterUsername: r.requester_username,
    requesterOrganization: r.requester_organization,
    status: r.status,
    window: windowOf(r),
    reason: r.reason,
    ticket: r.ticket,
    capabilities: r.capabilities,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    decidedAt: r.decided_at,
    decisionReason: r.decision_reason,
    assets: assets.rows
      .filter((a) => a.request_id === r.id)
      .map((a) => ({ id: a.id, name: a.name, zoneId: a.zone_id })),
    zones: zones.rows
      .filter((z) => z.request_id === r.id)
      .map((z) => ({
        zoneId: z.zone_id,
        zoneName: z.name,
        requiredApprovals: z.required_approvals,
      })),
    approvals: approvals.rows
      .filter((a) => a.request_id === r.id)
      .map((a) => ({
        approverId: a.approver_id,
        approverUsername: a.username,
        zoneId: a.zone_id,
        decision: a.decision,
        comment: a.comment,
        notBefore: a.not_before,
        notAfter: a.not_after,
        decidedAt: a.decided_at,
      })),
    grantIds: grants.rows.filter((g) => g.request_id === r.id).map((g) => g.id),
  }));
}

/** Loads a request and locks its row: decisions on one request are serialised. */
export async function lockRequest(db: Queryable, id: string): Promise<AccessRequestRecord> {
  const { rowCount } = await db.query('select 1 from access_requests where id = $1 for update', [
    id,
  ]);
  if (rowCount === 0) throw new AppError('access_request.not_found', { id });
  const [request] = await findRequests(db, { ids: [id] });
  if (request === undefined) throw new AppError('access_request.not_found', { id });
  return request;
}

export async function setRequestStatus(
  db: Queryable,
  id: string,
  status: RequestStatus,
  decidedAt: Date,
  decisionReason: string | null,
): Promise<void> {
  await db.query(
    `update access_requests set status = $2, decided_at = $3, decision_reason = $4 where id = $1 and status = 'pending'`,
    [id, status, decidedAt, decisionReason],
  );
}

export async function insertApprovals(
  db: Queryable,
  a: {
    requestId: string;
    approverId: string;
    zoneIds: readonly string[];
    decision: 'approve' | 'deny';
    comment: string | null;
    notBefore: Date | null;
    notAfter: Date | null;
    decidedAt: Date;
  },
): Promise<void> {
  await db.query(
    `insert into approvals (request_id, approver_id, zone_id, decision, comment, not_before, not_after, decided_at)
     select $1, $2, unnest($3::text[]), $4, $5, $6, $7, $8`,
    [
      a.requestId,
      a.approverId,
      a.zoneIds,
      a.decision,
      a.comment,
      a.notBefore,
      a.notAfter,
      a.decidedAt,
    ],
  );
}
