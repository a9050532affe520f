import type { AirlockConfig } from '@airlock/config';
import type { Vault } from '@airlock/crypto';
import type { Pool } from '@airlock/db';
import type { Clock } from '@airlock/domain';
import type { AccessTokens } from '@airlock/tokens';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Metrics } from './http/metrics.js';

/**
 * Everything a request handler or job needs, built once at start. Features
 * take it explicitly; nothing reaches for globals.
 */
export interface BrokerContext {
  readonly config: AirlockConfig;
  readonly pool: Pool;
  readonly clock: Clock;
  readonly log: Logger;
  readonly vault: Vault;
  readonly tokens: AccessTokens;
  readonly auditKeys: { readonly privateKey: KeyObject; readonly publicKey: KeyObject };
  /** Signs grant tokens for connectors; its public half is pinned by each connector at enrolment. */
  readonly connectorKeys: { readonly privateKey: KeyObject; readonly publicKey: KeyObject };
  readonly metrics: Metrics;
  /** Reports whether background dependencies (Redis for jobs) are usable. */
  readonly readiness: () => Promise<{ ok: boolean; detail: string }>;
}
