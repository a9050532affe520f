import { createAuditCheckpoint } from '@airlock/audit';
import { MINUTE_MS } from '@airlock/domain';
import { createJobRunner, scheduleJob, type JobHandler, type JobRunner } from '@airlock/jobs';
import type { BrokerContext } from './context.js';
import { grantJobHandlers } from './features/grants/service.js';
import { requestJobHandlers } from './features/requests/service.js';
import { NOTIFY_JOB, notificationHandler } from './notifications/notify.js';

export const CHECKPOINT_JOB = 'audit.checkpoint';

function checkpointHandler(ctx: BrokerContext): JobHandler {
  return async () => {
    const checkpoint = await createAuditCheckpoint(ctx.pool, {
      privateKey: ctx.auditKeys.privateKey,
      clock: ctx.clock,
    });
    if (checkpoint !== null) ctx.log.info({ seq: checkpoint.seq }, 'audit checkpoint signed');
    await scheduleNextCheckpoint(ctx);
  };
}

async function scheduleNextCheckpoint(ctx: BrokerContext): Promise<void> {
  const runAt = new Date(ctx.clock.now().getTime() + ctx.config.auditCheckpointMinutes * MINUTE_MS);
  await scheduleJob(
    ctx.pool,
    {
      kind: CHECKPOINT_JOB,
      payload: {},
      runAt,
      dedupeKey: `${CHECKPOINT_JOB}:${runAt.toISOString()}`,
    },
    ctx.clock,
  );
}

/** Keeps one live checkpoint job in the outbox (replicas share it). */
export async function ensureCheckpointJob(ctx: BrokerContext): Promise<void> {
  const { rowCount } = await ctx.pool.query(
    `select 1 from jobs where kind = $1 and state in ('scheduled', 'dispatched') limit 1`,
    [CHECKPOINT_JOB],
  );
  if (rowCount === 0) await scheduleNextCheckpoint(ctx);
}

export function lifecycleHandlers(ctx: BrokerContext): Record<string, JobHandler> {
  const handlers: Record<string, JobHandler> = {
    ...requestJobHandlers(ctx),
    ...grantJobHandlers(ctx),
    [NOTIFY_JOB]: notificationHandler(ctx),
    [CHECKPOINT_JOB]: checkpointHandler(ctx),
  };
  // Count outcomes for /metrics without touching each handler.
  return Object.fromEntries(
    Object.entries(handlers).map(([kind, handler]) => [
      kind,
      (async (payload, jobCtx) => {
        try {
          await handler(payload, jobCtx);
          ctx.metrics.jobs.inc({ kind, outcome: 'done' });
        } catch (err) {
          ctx.metrics.jobs.inc({ kind, outcome: 'error' });
          throw err;
        }
      }) satisfies JobHandler,
    ]),
  );
}

export function createLifecycleRunner(
  ctx: BrokerContext,
  options: {
    redisUrl?: string | undefined;
    queueName?: string | undefined;
    pollIntervalMs?: number | undefined;
  },
): JobRunner {
  return createJobRunner({
    pool: ctx.pool,
    clock: ctx.clock,
    handlers: lifecycleHandlers(ctx),
    ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }),
    ...(options.queueName === undefined ? {} : { queueName: options.queueName }),
    pollIntervalMs: options.pollIntervalMs ?? ctx.config.jobPollIntervalMs,
    log: ctx.log,
  });
}
