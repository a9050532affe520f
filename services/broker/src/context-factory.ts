import type { AirlockConfig } from '@airlock/config';
import { deriveEd25519KeyPair, Vault } from '@airlock/crypto';
import type { Pool } from '@airlock/db';
import type { Clock, Secret } from '@airlock/domain';
import { AccessTokens } from '@airlock/tokens';
import type { Logger } from 'pino';
import type { BrokerContext } from './context.js';
import { createMetrics } from './http/metrics.js';

export const TOKEN_ISSUER = 'airlock';
export const TOKEN_AUDIENCE = 'airlock-api';

/**
 * Every key the broker uses is derived from the one master key (HKDF, one
 * purpose each), so replicas sharing the master key agree on all of them and
 * a database dump alone opens nothing.
 */
export function createBrokerContext(options: {
  config: AirlockConfig;
  pool: Pool;
  clock: Clock;
  log: Logger;
  masterKey: Secret<Buffer>;
  readiness?: BrokerContext['readiness'];
  defaultMetrics?: boolean;
}): BrokerContext {
  const { config, pool, clock, log, masterKey } = options;
  return {
    config,
    pool,
    clock,
    log,
    vault: new Vault(masterKey),
    tokens: new AccessTokens({
      keys: deriveEd25519KeyPair(masterKey, 'access-tokens'),
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      ttlSeconds: config.accessTokenTtlSeconds,
      clock,
    }),
    auditKeys: deriveEd25519KeyPair(masterKey, 'audit-checkpoints'),
    connectorKeys: deriveEd25519KeyPair(masterKey, 'connector-grants'),
    metrics: createMetrics({ defaultMetrics: options.defaultMetrics ?? true }),
    readiness: options.readiness ?? (() => Promise.resolve({ ok: true, detail: 'in-process' })),
  };
}
