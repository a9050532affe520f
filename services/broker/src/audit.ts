import {
  appendAuditEvent,
  appendAuditEventStandalone,
  type AuditEventInput,
  type AuditEventRecord,
} from '@airlock/audit';
import type { PoolClient } from '@airlock/db';
import type { BrokerContext } from './context.js';

/** Appends inside the caller's transaction: the event commits with the change it describes. */
export async function audit(
  client: PoolClient,
  ctx: BrokerContext,
  event: AuditEventInput,
): Promise<AuditEventRecord> {
  const record = await appendAuditEvent(client, event, ctx.clock);
  ctx.metrics.auditEvents.inc({ type: event.type });
  return record;
}

/**
 * For events with no accompanying change (a refused login, a refused
 * decision whose transaction was rolled back).
 */
export async function auditAlone(
  ctx: BrokerContext,
  event: AuditEventInput,
): Promise<AuditEventRecord> {
  const record = await appendAuditEventStandalone(ctx.pool, event, ctx.clock);
  ctx.metrics.auditEvents.inc({ type: event.type });
  return record;
}
