import { randomBytes } from 'node:crypto';
import type { AuditActor } from '@airlock/audit';
import { hashPassword, parseSshPublicKey } from '@airlock/crypto';
import { withTransaction, type PoolClient } from '@airlock/db';
import { AppError, newId, type Role } from '@airlock/domain';
import { audit } from '../../audit.js';
import { parseCidrList, refuseLiteralHost } from '../../notifications/egress.js';
import { webhookUrl } from '../../notifications/webhook.js';
import type { BrokerContext } from '../../context.js';
import { actorOf, type Principal } from '../../principal.js';
import { clearThrottle, revokeAllAuthSessions } from '../auth/repository.js';
import {
  deleteSshKey,
  ensureOrganization,
  getUserById,
  insertSshKey,
  insertUser,
  toPublicUser,
  updateUser,
  type PublicUser,
  type SshKeyRecord,
} from './repository.js';

export interface NewUser {
  readonly username: string;
  readonly password: string;
  readonly roles: readonly Role[];
  readonly organization?: string | undefined;
  readonly displayName?: string | undefined;
}

function checkPassword(ctx: BrokerContext, password: string): void {
  if (password.length < ctx.config.minPasswordLength) {
    throw new AppError('user.weak_password', { min: ctx.config.minPasswordLength });
  }
}

/** Creates a user inside the caller's transaction (used by the API, the CLI, bootstrap and the demo seed). */
export async function createUserIn(
  client: PoolClient,
  ctx: BrokerContext,
  actor: AuditActor,
  input: NewUser,
): Promise<PublicUser> {
  checkPassword(ctx, input.password);
  const roles = [...new Set(input.roles)];
  if (
    roles.includes('vendor') &&
    (input.organization === undefined || input.organization.trim() === '')
  ) {
    throw new AppError('user.organization_required');
  }
  const now = ctx.clock.now();
  const organizationId =
    input.organization === undefined
      ? null
      : await ensureOrganization(client, input.organization.trim(), now);
  const id = newId('user');
  await insertUser(
    client,
    {
      id,
      username: input.username.toLowerCase(),
      displayName: input.displayName ?? null,
      organizationId,
      roles,
      passwordHash: await hashPassword(input.password),
    },
    now,
  );
  const user = await getUserById(client, id);
  await audit(client, ctx, {
    type: 'user.created',
    actor,
    subjectId: id,
    data: { username: user.username, roles, organization: user.organizationName },
  });
  return toPublicUser(user);
}

export async function createUser(
  ctx: BrokerContext,
  principal: Principal,
  input: NewUser,
): Promise<PublicUser> {
  return withTransaction(ctx.pool, (client) =>
    createUserIn(client, ctx, actorOf(principal), input),
  );
}

export async function updateUserByAdmin(
  ctx: BrokerContext,
  principal: Principal,
  userId: string,
  changes: {
    roles?: readonly Role[] | undefined;
    displayName?: string | null | undefined;
    disabled?: boolean | undefined;
  },
): Promise<PublicUser> {
  return withTransaction(ctx.pool, async (client) => {
    const before = await getUserById(client, userId, { forUpdate: true });
    const now = ctx.clock.now();
    const roles = changes.roles === undefined ? undefined : [...new Set(changes.roles)];
    if (roles?.includes('vendor') === true && before.organizationId === null)
      throw new AppError('user.organization_required');
    await updateUser(
      client,
      userId,
      {
        ...(roles === undefined ? {} : { roles }),
        ...(changes.displayName === undefined ? {} : { displayName: changes.displayName }),
        ...(changes.disabled === undefined
          ? {}
          : { disabledAt: changes.disabled ? (before.disabledAt ?? now) : null }),
      },
      now,
    );
    if (changes.disabled === true || roles !== undefined)
      await revokeAllAuthSessions(client, userId, now);
    if (roles !== undefined && !roles.includes('approver')) {
      await client.query('delete from zone_approvers where user_id = $1', [userId]);
    }
    const after = await getUserById(client, userId);
    await audit(client, ctx, {
      type: 'user.updated',
      actor: actorOf(principal),
      subjectId: userId,
      data: {
        before: {
          roles: [...before.roles],
          displayName: before.displayName,
          disabled: before.disabledAt !== null,
        },
        after: {
          roles: [...after.roles],
          displayName: after.displayName,
          disabled: after.disabledAt !== null,
        },
      },
    });
    return toPublicUser(after);
  });
}

/** An operator's password reset: every sign-in session of the user ends and the lockout is lifted. */
export async function resetPasswordIn(
  client: PoolClient,
  ctx: BrokerContext,
  actor: AuditActor,
  userId: string,
  password: string,
): Promise<void> {
  checkPassword(ctx, password);
  const user = await getUserById(client, userId, { forUpdate: true });
  const now = ctx.clock.now();
  await updateUser(client, userId, { passwordHash: await hashPassword(password) }, now);
  await revokeAllAuthSessions(client, userId, now);
  await clearThrottle(client, user.username);
  await audit(client, ctx, { type: 'user.password_reset', actor, subjectId: userId });
}

export async function resetTotp(
  ctx: BrokerContext,
  principal: Principal,
  userId: string,
): Promise<void> {
  await withTransaction(ctx.pool, async (client) => {
    await getUserById(client, userId, { forUpdate: true });
    const now = ctx.clock.now();
    await updateUser(
      client,
      userId,
      { totpSecret: null, totpEnabledAt: null, totpPendingSecret: null, totpLastStep: null },
      now,
    );
    await revokeAllAuthSessions(client, userId, now);
    await audit(client, ctx, {
      type: 'user.updated',
      actor: actorOf(principal),
      subjectId: userId,
      data: { totp: 'reset' },
    });
  });
}

export async function addSshKey(
  ctx: BrokerContext,
  principal: Principal,
  input: { publicKey: string; name?: string | undefined },
): Promise<SshKeyRecord> {
  const parsed = parseSshPublicKey(input.publicKey);
  const key: SshKeyRecord = {
    id: newId('sshKey'),
    userId: principal.userId,
    name: (input.name ?? parsed.comment).trim() || parsed.fingerprint,
    algorithm: parsed.algorithm,
    publicKey: parsed.normalized,
    fingerprint: parsed.fingerprint,
    createdAt: ctx.clock.now(),
  };
  await withTransaction(ctx.pool, async (client) => {
    await insertSshKey(client, key);
    await audit(client, ctx, {
      type: 'ssh_key.added',
      actor: actorOf(principal),
      subjectId: principal.userId,
      data: { keyId: key.id, fingerprint: key.fingerprint, algorithm: key.algorithm },
    });
  });
  return key;
}

export async function removeSshKey(
  ctx: BrokerContext,
  principal: Principal,
  keyId: string,
): Promise<void> {
  await withTransaction(ctx.pool, async (client) => {
    const key = await deleteSshKey(client, principal.userId, keyId);
    await audit(client, ctx, {
      type: 'ssh_key.removed',
      actor: actorOf(principal),
      subjectId: principal.userId,
      data: { keyId, fingerprint: key.fingerprint },
    });
  });
}

export function webhookSecretAad(userId: string): string {
  return `user:${userId}:webhook`;
}

/** Sets the user's webhook endpoint; the signing secret is generated here and shown once. */
export async function configureWebhook(
  ctx: BrokerContext,
  principal: Principal,
  url: string | null,
): Promise<{ secret: string | null }> {
  if (url !== null) {
    refuseLiteralHost(webhookUrl(url), parseCidrList(ctx.config.webhookAllowedCidrs));
  }
  const secret = url === null ? null : `whsec_${randomBytes(24).toString('base64url')}`;
  await withTransaction(ctx.pool, async (client) => {
    await updateUser(
      client,
      principal.userId,
      {
        webhookUrl: url,
        webhookSecret:
          secret === null ? null : ctx.vault.seal(secret, webhookSecretAad(principal.userId)),
      },
      ctx.clock.now(),
    );
    await audit(client, ctx, {
      type: 'user.webhook_configured',
      actor: actorOf(principal),
      subjectId: principal.userId,
      data: { url: url === null ? null : new URL(url).origin },
    });
  });
  return { secret };
}
