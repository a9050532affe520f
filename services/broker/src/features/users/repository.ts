import type { Queryable } from '@airlock/db';
import { AppError, newId, type Role } from '@airlock/domain';

export interface UserRecord {
  readonly id: string;
  readonly username: string;
  readonly displayName: string | null;
  readonly organizationId: string | null;
  readonly organizationName: string | null;
  readonly roles: readonly Role[];
  readonly passwordHash: string;
  readonly totpSecret: Buffer | null;
  readonly totpEnabledAt: Date | null;
  readonly totpPendingSecret: Buffer | null;
  readonly totpLastStep: number | null;
  readonly webhookUrl: string | null;
  readonly webhookSecret: Buffer | null;
  readonly disabledAt: Date | null;
  readonly createdAt: Date;
}

/** What any API may say about a user: no hashes, no secrets. */
export interface PublicUser {
  readonly id: string;
  readonly username: string;
  readonly displayName: string | null;
  readonly organization: string | null;
  readonly roles: Role[];
  readonly totpEnabled: boolean;
  readonly disabled: boolean;
  readonly webhookConfigured: boolean;
  readonly createdAt: string;
}

export function toPublicUser(u: UserRecord): PublicUser {
  return {
    id: u.id,
    username: u.username,
    displayName: u.displayName,
    organization: u.organizationName,
    roles: [...u.roles],
    totpEnabled: u.totpEnabledAt !== null,
    disabled: u.disabledAt !== null,
    webhookConfigured: u.webhookUrl !== null,
    createdAt: u.createdAt.toISOString(),
  };
}

const USER_COLUMNS = `
  u.id, u.username, u.display_name, u.organization_id, o.name as organization_name, u.roles,
  u.password_hash, u.totp_secret, u.totp_enabled_at, u.totp_pending_secret, u.totp_last_step,
  u.webhook_url, u.webhook_secret, u.disabled_at, u.created_at`;

interface UserRow {
  id: string;
  username: string;
  display_name: string | null;
  organization_id: string | null;
  organization_name: string | null;
  roles: Role[];
  password_hash: string;
  totp_secret: Buffer | null;
  totp_enabled_at: Date | null;
  totp_pending_secret: Buffer | null;
  totp_last_step: number | null;
  webhook_url: string | null;
  webhook_secret: Buffer | null;
  disabled_at: Date | null;
  created_at: Date;
}

function fromRow(r: UserRow): UserRecord {
  return {
    id: r.id,
    username: r.username,
    displayName: r.display_name,
    organizationId: r.organization_id,
    organizationName: r.organization_name,
    roles: r.roles,
    passwordHash: r.password_hash,
    totpSecret: r.totp_secret,
    totpEnabledAt: r.totp_enabled_at,
    totpPendingSecret: r.totp_pending_secret,
    totpLastStep: r.totp_last_step,
    webhookUrl: r.webhook_url,
    webhookSecret: r.webhook_secret,
    disabledAt: r.disabled_at,
    createdAt: r.created_at,
  };
}

export async function findUserById(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<UserRecord | null> {
  const { rows } = await db.query<UserRow>(
    `select ${USER_COLUMNS} from users u left join organizations o on o.id = u.organization_id
      where u.id = $1 ${options.forUpdate === true ? 'for update of u' : ''}`,
    [id],
  );
  return rows[0] === undefined ? null : fromRow(rows[0]);
}

export async function getUserById(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<UserRecord> {
  const user = await findUserById(db, id, options);
  if (user === null) throw new AppError('user.not_found', { id });
  return user;
}

export async function findUserByUsername(
  db: Queryable,
  username: string,
): Promise<UserRecord | null> {
  const { rows } = await db.query<UserRow>(
    `select ${USER_COLUMNS} from users u left join organizations o on o.id = u.organization_id where u.username = $1`,
    [username],
  );
  return rows[0] === undefined ? null : fromRow(rows[0]);
}

export async function listUsers(
  db: Queryable,
  filter: { role?: Role | undefined } = {},
): Promise<UserRecord[]> {
  const { rows } = await db.query<UserRow>(
    `select ${USER_COLUMNS} from users u left join organizations o on o.id = u.organization_id
      where ($1::text is null or $1 = any (u.roles)) order by u.username`,
    [filter.role ?? null],
  );
  return rows.map(fromRow);
}

export async function countUsers(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from users');
  return rows[0]?.n ?? 0;
}

export async function ensureOrganization(db: Queryable, name: string, now: Date): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `insert into organizations (id, name, created_at) values ($1, $2, $3)
     on conflict (name) do update set name = excluded.name returning id`,
    [newId('organization'), name, now],
  );
  const id = rows[0]?.id;
  if (id === undefined) throw new Error('organization upsert returned no row');
  return id;
}

export async function insertUser(
  db: Queryable,
  user: {
    id: string;
    username: string;
    displayName: string | null;
    organizationId: string | null;
    roles: readonly Role[];
    passwordHash: string;
  },
  now: Date,
): Promise<void> {
  try {
    await db.query(
      `insert into users (id, username, display_name, organization_id, roles, password_hash, created_at, updated_at)
       values ($1, $2, $3, $4, $5, $6, $7, $7)`,
      [
        user.id,
        user.username,
        user.displayName,
        user.organizationId,
        user.roles,
        user.passwordHash,
        now,
      ],
    );
  } catch (err) {
    if ((err as { constraint?: string }).constraint === 'users_username_uq') {
      throw new AppError('user.username_taken', { username: user.username });
    }
    throw err;
  }
}

export async function updateUser(
  db: Queryable,
  id: string,
  changes: {
    passwordHash?: string;
    roles?: readonly Role[];
    displayName?: string | null;
    disabledAt?: Date | null;
    totpSecret?: Buffer | null;
    totpEnabledAt?: Date | null;
    totpPendingSecret?: Buffer | null;
    totpLastStep?: number | null;
    webhookUrl?: string | null;
    webhookSecret?: Buffer | null;
  },
  now: Date,
): Promise<void> {
  const columns: Record<string, string> = {
    passwordHash: 'password_hash',
    roles: 'roles',
    displayName: 'display_name',
    disabledAt: 'disabled_at',
    totpSecret: 'totp_secret',
    totpEnabledAt: 'totp_enabled_at',
    totpPendingSecret: 'totp_pending_secret',
    totpLastStep: 'totp_last_step',
    webhookUrl: 'webhook_url',
    webhookSecret: 'webhook_secret',
  };
  const sets: string[] = [];
  const values: unknown[] = [id, now];
  for (const [key, value] of Object.entries(changes)) {
    const column = columns[key];
    if (column === undefined || value === undefined) continue;
    values.push(value);
    sets.push(`${column} = $${values.length}`);
  }
  await db.query(
    `update users set ${[...sets, 'updated_at = $2'].join(', ')} where id = $1`,
    values,
  );
}

/** TOTP replay protection: a step is accepted once, atomically across replicas. */
export async function advanceTotpStep(
  db: Queryable,
  userId: string,
  step: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    'update users set totp_last_step = $2 where id = $1 and (totp_last_step is null or totp_last_step < $2)',
    [userId, step],
  );
  return rowCount === 1;
}

export interface SshKeyRecord {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly algorithm: string;
  readonly publicKey: string;
  readonly fingerprint: string;
  readonly createdAt: Date;
}

interface SshKeyRow {
  id: string;
  user_id: string;
  name: string;
  algorithm: string;
  public_key: string;
  fingerprint: string;
  created_at: Date;
}

const keyFromRow = (r: SshKeyRow): SshKeyRecord => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  algorithm: r.algorithm,
  publicKey: r.public_key,
  fingerprint: r.fingerprint,
  createdAt: r.created_at,
});

export async function insertSshKey(db: Queryable, key: SshKeyRecord): Promise<void> {
  try {
    await db.query(
      `insert into ssh_keys (id, user_id, name, algorithm, public_key, fingerprint, created_at)
       values ($1, $2, $3, $4, $5, $6, $7)`,
      [key.id, key.userId, key.name, key.algorithm, key.publicKey, key.fingerprint, key.createdAt],
    );
  } catch (err) {
    if ((err as { constraint?: string }).constraint === 'ssh_keys_fingerprint_uq')
      throw new AppError('ssh_key.duplicate');
    throw err;
  }
}

export async function listSshKeys(db: Queryable, userId: string): Promise<SshKeyRecord[]> {
  const { rows } = await db.query<SshKeyRow>(
    'select * from ssh_keys where user_id = $1 order by created_at',
    [userId],
  );
  return rows.map(keyFromRow);
}

export async function findSshKeyByFingerprint(
  db: Queryable,
  fingerprint: string,
): Promise<SshKeyRecord | null> {
  const { rows } = await db.query<SshKeyRow>('select * from ssh_keys where fingerprint = $1', [
    fingerprint,
  ]);
  return rows[0] === undefined ? null : keyFromRow(rows[0]);
}

export async function deleteSshKey(
  db: Queryable,
  userId: string,
  keyId: string,
): Promise<SshKeyRecord> {
  const { rows } = await db.query<SshKeyRow>(
    'delete from ssh_keys where id = $1 and user_id = $2 returning *',
    [keyId, userId],
  );
  if (rows[0] === undefined) throw new AppError('ssh_key.not_found', { id: keyId });
  return keyFromRow(rows[0]);
}
