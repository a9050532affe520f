import type { AuditActor, JsonValue } from '@airlock/audit';
import { withTransaction, type PoolClient } from '@airlock/db';
import { AppError, newId, normalizeZonePolicy, type ZonePolicy } from '@airlock/domain';
import { audit } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import { actorOf, type Principal } from '../../principal.js';
import { listUsers } from '../users/repository.js';
import {
  getZone,
  insertZone,
  lockZone,
  replaceZoneApprovers,
  updateZoneRow,
  type ZoneRecord,
} from './repository.js';

export async function createZoneIn(
  client: PoolClient,
  ctx: BrokerContext,
  actor: AuditActor,
  input: {
    name: string;
    description?: string | undefined;
    policy?: Partial<ZonePolicy> | undefined;
  },
): Promise<ZoneRecord> {
  const policy = normalizeZonePolicy(input.policy ?? {});
  const id = newId('zone');
  await insertZone(
    client,
    { id, name: input.name, description: input.description ?? null, policy },
    ctx.clock.now(),
  );
  await audit(client, ctx, {
    type: 'zone.created',
    actor,
    subjectId: id,
    data: { name: input.name, policy: policyData(policy) },
  });
  return getZone(client, id);
}

export async function createZone(
  ctx: BrokerContext,
  principal: Principal,
  input: {
    name: string;
    description?: string | undefined;
    policy?: Partial<ZonePolicy> | undefined;
  },
): Promise<ZoneRecord> {
  return withTransaction(ctx.pool, (client) =>
    createZoneIn(client, ctx, actorOf(principal), input),
  );
}

function policyData(policy: ZonePolicy): { [k: string]: JsonValue } {
  return JSON.parse(JSON.stringify(policy)) as { [k: string]: JsonValue };
}

/** A policy edit applies to requests filed after it; requests in flight keep their quorum. */
export async function updateZone(
  ctx: BrokerContext,
  principal: Principal,
  zoneId: string,
  changes: {
    name?: string | undefined;
    description?: string | null | undefined;
    policy?: Partial<ZonePolicy> | undefined;
  },
): Promise<ZoneRecord> {
  return withTransaction(ctx.pool, async (client) => {
    await lockZone(client, zoneId);
    const before = await getZone(client, zoneId);
    const policy =
      changes.policy === undefined ? undefined : normalizeZonePolicy(changes.policy, before.policy);
    await updateZoneRow(
      client,
      zoneId,
      {
        ...(changes.name === undefined ? {} : { name: changes.name }),
        ...(changes.description === undefined ? {} : { description: changes.description }),
        ...(policy === undefined ? {} : { policy }),
      },
      ctx.clock.now(),
    );
    const after = await getZone(client, zoneId);
    await audit(client, ctx, {
      type: 'zone.updated',
      actor: actorOf(principal),
      subjectId: zoneId,
      data: {
        before: { name: before.name, policy: policyData(before.policy) },
        after: { name: after.name, policy: policyData(after.policy) },
      },
    });
    return after;
  });
}

export async function setZoneApproversIn(
  client: PoolClient,
  ctx: BrokerContext,
  actor: AuditActor,
  zoneId: string,
  userIds: readonly string[],
): Promise<ZoneRecord> {
  await lockZone(client, zoneId);
  const approvers = new Set(
    (await listUsers(client, { role: 'approver' }))
      .filter((u) => u.disabledAt === null)
      .map((u) => u.id),
  );
  const unique = [...new Set(userIds)];
  for (const id of unique)
    if (!approvers.has(id)) throw new AppError('zone.approver_not_eligible', { id });
  const before = await getZone(client, zoneId);
  await replaceZoneApprovers(client, zoneId, unique, ctx.clock.now());
  await audit(client, ctx, {
    type: 'zone.approvers_set',
    actor,
    subjectId: zoneId,
    data: { before: [...before.approverIds], after: unique },
  });
  return getZone(client, zoneId);
}

export async function setZoneApprovers(
  ctx: BrokerContext,
  principal: Principal,
  zoneId: string,
  userIds: readonly string[],
): Promise<ZoneRecord> {
  return withTransaction(ctx.pool, (client) =>
    setZoneApproversIn(client, ctx, actorOf(principal), zoneId, userIds),
  );
}
