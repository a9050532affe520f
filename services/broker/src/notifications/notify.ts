import type { Queryable } from '@airlock/db';
import { newId } from '@airlock/domain';
import { scheduleJob, type JobHandler } from '@airlock/jobs';
import type { BrokerContext } from '../context.js';
import { findUserById } from '../features/users/repository.js';
import { webhookSecretAad } from '../features/users/service.js';
import { parseCidrList } from './egress.js';
import { deliverWebhook } from './webhook.js';

export const NOTIFY_JOB = 'notification.webhook';

export type NotificationEvent =
  | 'access_request.created'
  | 'access_request.approved'
  | 'access_request.denied'
  | 'access_request.expired'
  | 'grant.activated'
  | 'grant.expiring'
  | 'grant.expired'
  | 'grant.revoked';

/**
 * Queues one signed webhook per user who has an endpoint configured, in the
 * caller's transaction (outbox): a notification exists iff the change that
 * caused it committed. The body is fixed now; the secret is read at delivery.
 */
export async function notifyUsers(
  db: Queryable,
  ctx: BrokerContext,
  userIds: readonly string[],
  event: NotificationEvent,
  data: Record<string, unknown>,
): Promise<void> {
  if (userIds.length === 0) return;
  const { rows } = await db.query<{ id: string }>(
    'select id from users where id = any ($1) and webhook_url is not null and disabled_at is null',
    [[...new Set(userIds)]],
  );
  const now = ctx.clock.now();
  for (const { id } of rows) {
    const notificationId = newId('webhookDelivery');
    await scheduleJob(
      db,
      {
        kind: NOTIFY_JOB,
        payload: {
          userId: id,
          event,
          body: JSON.stringify({
            id: notificationId,
            type: event,
            occurredAt: now.toISOString(),
            data,
          }),
        },
        runAt: now,
        dedupeKey: `${NOTIFY_JOB}:${notificationId}`,
        maxAttempts: 8,
      },
      ctx.clock,
    );
  }
}

/** Delivers one webhook; a throw makes the job layer retry with backoff. */
export function notificationHandler(ctx: BrokerContext): JobHandler {
  return async (payload) => {
    const userId = String(payload.userId);
    const event = String(payload.event);
    const body = String(payload.body);
    const user = await findUserById(ctx.pool, userId);
    // The user removed the endpoint (or was disabled) since: nothing to send.
    if (
      user === null ||
      user.disabledAt !== null ||
      user.webhookUrl === null ||
      user.webhookSecret === null
    )
      return;
    const secret = ctx.vault.open(user.webhookSecret, webhookSecretAad(user.id));
    const { status } = await deliverWebhook({
      url: user.webhookUrl,
      secret: secret.reveal(),
      event,
      body,
      clock: ctx.clock,
      allowedCidrs: parseCidrList(ctx.config.webhookAllowedCidrs),
    });
    ctx.log.info({ userId, event, status }, 'webhook delivered');
  };
}
