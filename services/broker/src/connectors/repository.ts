import type { Queryable } from '@airlock/db';
import type { AssetEndpoint } from '@airlock/tunnel';

export interface ConnectorIdentityRecord {
  readonly id: string;
  readonly zoneId: string;
  readonly name: string;
  /** SPKI PEM; null until enrolled. */
  readonly publicKey: string | null;
  readonly status: 'pending' | 'online' | 'offline' | 'disabled';
}

export async function findConnectorIdentity(
  db: Queryable,
  id: string,
): Promise<ConnectorIdentityRecord | null> {
  const { rows } = await db.query<{
    id: string;
    zone_id: string;
    name: string;
    public_key: string | null;
    status: ConnectorIdentityRecord['status'];
  }>('select id, zone_id, name, public_key, status from connectors where id = $1', [id]);
  const r = rows[0];
  return r === undefined
    ? null
    : { id: r.id, zoneId: r.zone_id, name: r.name, publicKey: r.public_key, status: r.status };
}

/**
 * How a zone is reached. A zone with any connector at all — even one not yet
 * enrolled, or disabled — is reached only through its enrolled, enabled
 * connectors: registering a connector says the broker has no business
 * dialling into that zone itself. `servingIds` may then be empty.
 */
export async function zoneConnectors(
  db: Queryable,
  zoneId: string,
): Promise<{ hasConnectors: boolean; servingIds: string[] }> {
  const { rows } = await db.query<{ id: string; serving: boolean }>(
    `select id, (enrolled_at is not null and status <> 'disabled') as serving
       from connectors where zone_id = $1 order by id`,
    [zoneId],
  );
  return {
    hasConnectors: rows.length > 0,
    servingIds: rows.filter((r) => r.serving).map((r) => r.id),
  };
}

/** What a connector of the zone may reach: each asset's host with its service port and listed forward ports. */
export async function zoneEndpoints(db: Queryable, zoneId: string): Promise<AssetEndpoint[]> {
  const { rows } = await db.query<{
    id: string;
    host: string;
    port: number;
    forward_ports: number[];
  }>('select id, host, port, forward_ports from assets where zone_id = $1 order by id', [zoneId]);
  return rows.map((r) => ({
    assetId: r.id,
    host: r.host,
    ports: [...new Set([r.port, ...r.forward_ports])],
  }));
}

/**
 * Remembers an accepted assertion's jti until it expires. False when it was
 * seen before (on any replica: the primary key is the shared memory).
 */
export async function rememberAssertion(
  db: Queryable,
  jti: string,
  connectorId: string,
  expiresAt: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `insert into connector_assertions (jti, connector_id, expires_at) values ($1, $2, $3)
     on conflict (jti) do nothing`,
    [jti, connectorId, expiresAt],
  );
  return rowCount === 1;
}

export async function forgetExpiredAssertions(db: Queryable, now: Date): Promise<void> {
  // A little after expiry: a replica whose clock runs behind may still accept one.
  await db.query('delete from connector_assertions where expires_at < $1', [
    new Date(now.getTime() - 60_000),
  ]);
}

/** Base URLs of the live replicas, for connectors to keep a control link to each. */
export async function liveReplicaUrls(
  db: Queryable,
  now: Date,
  staleMs: number,
): Promise<string[]> {
  const { rows } = await db.query<{ http_url: string }>(
    `select distinct http_url from broker_instances
      where http_url is not null and stopped_at is null and last_seen_at >= $1 order by http_url`,
    [new Date(now.getTime() - staleMs)],
  );
  return rows.map((r) => r.http_url);
}

export async function advertiseReplicaUrl(
  db: Queryable,
  instanceId: string,
  url: string,
): Promise<void> {
  await db.query('update broker_instances set http_url = $2 where id = $1', [instanceId, url]);
}

/** The session is now carried by this connector (set once; the database refuses a change). */
export async function recordSessionConnector(
  db: Queryable,
  sessionId: string,
  connectorId: string,
): Promise<void> {
  await db.query(
    'update sessions set connector_id = $2 where id = $1 and connector_id is null and ended_at is null',
    [sessionId, connectorId],
  );
}

/** Which of these connectors an admin has disabled. */
export async function disabledConnectorIds(
  db: Queryable,
  ids: readonly string[],
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `select id from connectors where id = any ($1) and status = 'disabled'`,
    [ids],
  );
  return rows.map((r) => r.id);
}
