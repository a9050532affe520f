import type { Queryable } from '@airlock/db';
import { AppError, type AssetProtocol } from '@airlock/domain';

export interface AssetRecord {
  readonly id: string;
  readonly name: string;
  readonly zoneId: string;
  readonly host: string;
  readonly port: number;
  readonly protocol: AssetProtocol;
  readonly login: string | null;
  /** Sealed by the vault; opened only by the session pipeline (DESIGN invariant 6). */
  readonly sealedCredential: Buffer | null;
  readonly credentialKind: 'password' | 'private_key' | null;
  readonly hostKey: string | null;
  readonly forwardPorts: readonly number[];
  readonly description: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface AssetRow {
  id: string;
  name: string;
  zone_id: string;
  host: string;
  port: number;
  protocol: AssetProtocol;
  login: string | null;
  credential: Buffer | null;
  credential_kind: 'password' | 'private_key' | null;
  host_key: string | null;
  forward_ports: number[];
  description: string | null;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (r: AssetRow): AssetRecord => ({
  id: r.id,
  name: r.name,
  zoneId: r.zone_id,
  host: r.host,
  port: r.port,
  protocol: r.protocol,
  login: r.login,
  sealedCredential: r.credential,
  credentialKind: r.credential_kind,
  hostKey: r.host_key,
  forwardPorts: r.forward_ports,
  description: r.description,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function listAssets(
  db: Queryable,
  filter: { zoneId?: string | undefined } = {},
): Promise<AssetRecord[]> {
  const { rows } = await db.query<AssetRow>(
    'select * from assets where ($1::text is null or zone_id = $1) order by name',
    [filter.zoneId ?? null],
  );
  return rows.map(fromRow);
}

export async function findAssetsByIds(
  db: Queryable,
  ids: readonly string[],
): Promise<AssetRecord[]> {
  const { rows } = await db.query<AssetRow>(
    'select * from assets where id = any ($1) order by name',
    [ids],
  );
  return rows.map(fromRow);
}

export async function getAsset(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<AssetRecord> {
  const { rows } = await db.query<AssetRow>(
    `select * from assets where id = $1 ${options.forUpdate === true ? 'for update' : ''}`,
    [id],
  );
  if (rows[0] === undefined) throw new AppError('asset.not_found', { id });
  return fromRow(rows[0]);
}

export async function findAssetByName(db: Queryable, name: string): Promise<AssetRecord | null> {
  const { rows } = await db.query<AssetRow>('select * from assets where name = $1', [name]);
  return rows[0] === undefined ? null : fromRow(rows[0]);
}

export async function insertAsset(
  db: Queryable,
  a: Omit<AssetRecord, 'createdAt' | 'updatedAt'>,
  now: Date,
): Promise<void> {
  try {
    await db.query(
      `insert into assets (id, name, zone_id, host, port, protocol, login, credential, credential_kind, host_key,
                           forward_ports, description, created_at, updated_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)`,
      [
        a.id,
        a.name,
        a.zoneId,
        a.host,
        a.port,
        a.protocol,
        a.login,
        a.sealedCredential,
        a.credentialKind,
        a.hostKey,
        a.forwardPorts,
        a.description,
        now,
      ],
    );
  } catch (err) {
    const constraint = (err as { constraint?: string }).constraint;
    if (constraint === 'assets_name_uq') throw new AppError('asset.name_taken', { name: a.name });
    if (constraint === 'assets_zone_fk') throw new AppError('zone.not_found', { id: a.zoneId });
    throw err;
  }
}

export async function updateAssetRow(
  db: Queryable,
  a: Omit<AssetRecord, 'createdAt' | 'updatedAt' | 'name' | 'zoneId'>,
  now: Date,
): Promise<void> {
  await db.query(
    `update assets set host = $2, port = $3, protocol = $4, login = $5, credential = $6, credential_kind = $7,
                       host_key = $8, forward_ports = $9, description = $10, updated_at = $11
      where id = $1`,
    [
      a.id,
      a.host,
      a.port,
      a.protocol,
      a.login,
      a.sealedCredential,
      a.credentialKind,
      a.hostKey,
      a.forwardPorts,
      a.description,
      now,
    ],
  );
}
