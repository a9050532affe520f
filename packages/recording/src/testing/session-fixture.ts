import type { Queryable } from '@airlock/db';
import { newId } from '@airlock/domain';

/**
 * Inserts the smallest valid chain a sessions row needs — organization,
 * vendor, zone, asset, approved request, grant — and the session itself.
 * Plain SQL, so the recording tests depend on the schema only, not on the
 * broker's services.
 */
export async function insertTestSession(
  db: Queryable,
  startedAt: Date = new Date('2024-05-01T08:00:00.000Z'),
): Promise<string> {
  const orgId = newId('organization');
  const userId = newId('user');
  const zoneId = newId('zone');
  const assetId = newId('asset');
  const requestId = newId('accessRequest');
  const grantId = newId('grant');
  const sessionId = newId('session');
  const suffix = sessionId.slice(-8);
  const at = startedAt.toISOString();
  const until = new Date(startedAt.getTime() + 8 * 3_600_000).toISOString();
  await db.query(
    `with
       o as (insert into organizations (id, name, created_at) values ($1, $8, $10)),
       u as (insert into users (id, username, organization_id, roles, password_hash, created_at, updated_at)
             values ($2, $9, $1, array['vendor'], 'x', $10, $10)),
       z as (insert into zones (id, name, policy, created_at, updated_at) values ($3, $8, '{}', $10, $10)),
       a as (insert into assets (id, name, zone_id, host, port, protocol, created_at, updated_at)
             values ($4, $9, $3, '192.0.2.1', 22, 'ssh', $10, $10)),
       r as (insert into access_requests (id, requester_id, status, window_kind, starts_at, ends_at, reason,
                                          capabilities, created_at, expires_at)
             values ($5, $2, 'approved', 'fixed', $10, $11, 'recording test', array['shell'], $10, $11)),
       g as (insert into grants (id, request_id, user_id, asset_id, zone_id, not_before, not_after, capabilities, created_at)
             values ($6, $5, $2, $4, $3, $10, $11, array['shell'], $10))
     insert into sessions (id, grant_id, user_id, asset_id, zone_id, protocol, broker_instance, started_at)
     values ($7, $6, $2, $4, $3, 'ssh', 'test', $10)`,
    [
      orgId,
      userId,
      zoneId,
      assetId,
      requestId,
      grantId,
      sessionId,
      `rec ${suffix}`,
      `v-${suffix}`,
      at,
      until,
    ],
  );
  return sessionId;
}
