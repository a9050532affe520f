/**
 * Lifecycle jobs as a transactional outbox: jobs are rows written in the same
 * transaction as the change that causes them; a runner dispatches due rows to
 * workers, over BullMQ (REDIS_URL set) or in process. PostgreSQL is the source
 * of truth for what is due, what ran and what failed.
 *
 * Delivery is at least once: a claim (`for update skip locked`) gives each
 * dispatch to exactly one worker across all replicas, and a dispatch not
 * finished within the lease is dispatched again. Handlers must therefore be
 * idempotent; see JobHandler.
 */
export {
  scheduleJob,
  cancelJobs,
  DEFAULT_MAX_ATTEMPTS,
  type ScheduleJobInput,
  type JobPayload,
} from './repository.js';
export { retryDelayMs } from './backoff.js';
export {
  createJobRunner,
  DEFAULT_QUEUE_NAME,
  type JobContext,
  type JobHandler,
  type JobRunner,
  type JobRunnerOptions,
} from './runner.js';
export type { RunnerLog, TransportName } from './transports.js';
