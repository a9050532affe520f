import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

/**
 * The Redis URL for tests that need one. Fails loudly when none could be had:
 * a BullMQ test must never pass by quietly running without Redis.
 */
export function testRedisUrl(): string {
  const url = inject('airlockRedisUrl');
  if (!url)
    throw new Error(
      `Redis is required by this test but none is available: ${inject('airlockRedisProblem')}`,
    );
  return url;
}

/** A queue name of its own per test, so parallel tests never share jobs. */
export function uniqueQueueName(prefix = 'airlock-test'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}
