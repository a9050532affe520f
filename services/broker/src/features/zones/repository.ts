import type { Queryable } from '@airlock/db';
import { AppError, normalizeZonePolicy, type ZonePolicy } from '@airlock/domain';

export interface ZoneRecord {
  readonly id: string;
  readonly name: string;
  readonly description: string | null;
  readonly policy: ZonePolicy;
  readonly approverIds: readonly string[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface ZoneRow {
  id: string;
  name: string;
  description: string | null;
  policy: ZonePolicy;
  approver_ids: string[];
  created_at: Date;
  updated_at: Date;
}

const SELECT_ZONES = `
  select z.id, z.name, z.description, z.policy, z.created_at, z.updated_at,
         coalesce(array_agg(za.user_id order by za.user_id) filter (where za.user_id is not null), '{}') as approver_ids
    from zones z left join zone_approvers za on za.zone_id = z.id`;

// Stored policies were checked when written; normalising on read fills any
// field added to the policy since, with its default.
const fromRow = (r: ZoneRow): ZoneRecord => ({
  id: r.id,
  name: r.name,
  description: r.description,
  policy: normalizeZonePolicy(r.policy),
  approverIds: r.approver_ids,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function listZones(db: Queryable): Promise<ZoneRecord[]> {
  const { rows } = await db.query<ZoneRow>(`${SELECT_ZONES} group by z.id order by z.name`);
  return rows.map(fromRow);
}

export async function findZonesByIds(db: Queryable, ids: readonly string[]): Promise<ZoneRecord[]> {
  const { rows } = await db.query<ZoneRow>(
    `${SELECT_ZONES} where z.id = any ($1) group by z.id order by z.name`,
    [ids],
  );
  return rows.map(fromRow);
}

export async function getZone(db: Queryable, id: string): Promise<ZoneRecord> {
  const [zone] = await findZonesByIds(db, [id]);
  if (zone === undefined) throw new AppError('zone.not_found', { id });
  return zone;
}

export async function lockZone(db: Queryable, id: string): Promise<void> {
  const { rowCount } = await db.query('select 1 from zones where id = $1 for update', [id]);
  if (rowCount === 0) throw new AppError('zone.not_found', { id });
}

export async function insertZone(
  db: Queryable,
  zone: { id: string; name: string; description: string | null; policy: ZonePolicy },
  now: Date,
): Promise<void> {
  try {
    await db.query(
      'insert into zones (id, name, description, policy, created_at, updated_at) values ($1, $2, $3, $4, $5, $5)',
      [zone.id, zone.name, zone.description, JSON.stringify(zone.policy), now],
    );
  } catch (err) {
    if ((err as { constraint?: string }).constraint === 'zones_name_uq')
      throw new AppError('zone.name_taken', { name: zone.name });
    throw err;
  }
}

export async function updateZoneRow(
  db: Queryable,
  id: string,
  changes: { description?: string | null; policy?: ZonePolicy; name?: string },
  now: Date,
): Promise<void> {
  try {
    await db.query(
      `update zones set
         name = coalesce($2, name),
         description = case when $3 then $4 else description end,
         policy = coalesce($5::jsonb, policy),
         updated_at = $6
       where id = $1`,
      [
        id,
        changes.name ?? null,
        changes.description !== undefined,
        changes.description ?? null,
        changes.policy === undefined ? null : JSON.stringify(changes.policy),
        now,
      ],
    );
  } catch (err) {
    if ((err as { constraint?: string }).constraint === 'zones_name_uq')
      throw new AppError('zone.name_taken', { name: changes.name });
    throw err;
  }
}

export async function replaceZoneApprovers(
  db: Queryable,
  zoneId: string,
  userIds: readonly string[],
  now: Date,
): Promise<void> {
  await db.query('delete from zone_approvers where zone_id = $1', [zoneId]);
  if (userIds.length > 0) {
    await db.query(
      'insert into zone_approvers (zone_id, user_id, created_at) select $1, unnest($2::text[]), $3',
      [zoneId, userIds, now],
    );
  }
}

/** Zones the user approves for. */
export async function zonesApprovedBy(db: Queryable, userId: string): Promise<string[]> {
  const { rows } = await db.query<{ zone_id: string }>(
    'select zone_id from zone_approvers where user_id = $1',
    [userId],
  );
  return rows.map((r) => r.zone_id);
}
