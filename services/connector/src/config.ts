/**
 * The connector's configuration: command-line flags, else AIRLOCK_CONNECTOR_*
 * environment variables (secrets also from `<NAME>_FILE`), checked once with
 * every problem reported together, then frozen. The only module of the
 * connector that reads process.env.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BrokerUrlError, checkBrokerUrl } from '@airlock/tunnel';

export interface ConnectorConfig {
  /** The broker (or its load balancer) to dial first; replicas are learned from it. */
  readonly brokerUrl: URL;
  /** One-time enrolment token; needed only until the connector is enrolled. */
  readonly enrollmentToken: string | null;
  readonly dataDir: string;
  /** PEM CA bundle (or the broker's own certificate) trusted instead of the system CAs. */
  readonly caFile: string | null;
  /** SHA-256 fingerprint of the broker's certificate, required in addition to CA verification. */
  readonly pinSha256: string | null;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Reconnect backoff: first delay and ceiling (jittered exponential in between). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
}

/** `--help`: print the usage and exit 0, before anything else is checked. */
export function wantsHelp(argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

export class ConnectorConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConnectorConfigError';
  }
}

export const USAGE = `usage: airlock-connector [--broker <https://broker:8080>] [--enroll <token>] [--data-dir <dir>]
                         [--ca-file <pem>] [--pin-sha256 <AA:BB:…>]
environment: AIRLOCK_CONNECTOR_BROKER_URL (default http://127.0.0.1:8080), AIRLOCK_CONNECTOR_ENROLLMENT_TOKEN(_FILE),
             AIRLOCK_CONNECTOR_DATA_DIR (default ./data/connector), AIRLOCK_CONNECTOR_CA_FILE,
             AIRLOCK_CONNECTOR_PIN_SHA256, AIRLOCK_CONNECTOR_LOG_LEVEL,
             AIRLOCK_CONNECTOR_BACKOFF_INITIAL_MS, AIRLOCK_CONNECTOR_BACKOFF_MAX_MS`;

export const DEFAULT_BROKER_URL = 'http://127.0.0.1:8080';

type Env = Readonly<Record<string, string | undefined>>;

export function loadConnectorConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: Env = process.env,
): ConnectorConfig {
  const problems: string[] = [];
  let flags: Record<string, string | undefined> = {};
  try {
    flags = parseArgs({
      args: [...argv],
      options: {
        broker: { type: 'string' },
        enroll: { type: 'string' },
        'data-dir': { type: 'string' },
        'ca-file': { type: 'string' },
        'pin-sha256': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (err) {
    problems.push((err as Error).message);
  }
  const text = (flag: string | undefined, name: string): string | undefined => {
    const v = flag ?? env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(undefined, name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };

  let brokerUrl = new URL(DEFAULT_BROKER_URL);
  // Unset: the local development broker (`pnpm start` on its default port).
  const brokerText = text(flags.broker, 'AIRLOCK_CONNECTOR_BROKER_URL') ?? DEFAULT_BROKER_URL;
  try {
    brokerUrl = checkBrokerUrl(brokerText);
  } catch (err) {
    if (!(err instanceof BrokerUrlError)) throw err;
    problems.push(`--broker: ${err.message}`);
  }

  let enrollmentToken = text(flags.enroll, 'AIRLOCK_CONNECTOR_ENROLLMENT_TOKEN') ?? null;
  const tokenFile = text(undefined, 'AIRLOCK_CONNECTOR_ENROLLMENT_TOKEN_FILE');
  if (tokenFile !== undefined) {
    if (enrollmentToken !== null)
      problems.push('set the enrolment token once, not also as a _FILE');
    else {
      try {
        enrollmentToken = readFileSync(tokenFile, 'utf8').trim();
      } catch (err) {
        problems.push(
          `AIRLOCK_CONNECTOR_ENROLLMENT_TOKEN_FILE: cannot read ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
    }
  }

  const pin = text(flags['pin-sha256'], 'AIRLOCK_CONNECTOR_PIN_SHA256')?.toUpperCase() ?? null;
  if (pin !== null && !/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(pin))
    problems.push('--pin-sha256 must be a SHA-256 fingerprint as AA:BB:… (32 bytes)');
  const caFile = text(flags['ca-file'], 'AIRLOCK_CONNECTOR_CA_FILE') ?? null;
  if (brokerUrl.protocol === 'http:' && (pin !== null || caFile !== null))
    problems.push('--ca-file and --pin-sha256 need an https:// broker URL');

  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
  const level = text(undefined, 'AIRLOCK_CONNECTOR_LOG_LEVEL') ?? 'info';
  if (!(levels as readonly string[]).includes(level))
    problems.push(`AIRLOCK_CONNECTOR_LOG_LEVEL must be one of ${levels.join(', ')}`);

  const config: ConnectorConfig = {
    brokerUrl,
    enrollmentToken,
    dataDir: resolve(text(flags['data-dir'], 'AIRLOCK_CONNECTOR_DATA_DIR') ?? './data/connector'),
    caFile: caFile === null ? null : resolve(caFile),
    pinSha256: pin,
    logLevel: level as ConnectorConfig['logLevel'],
    backoffInitialMs: int('AIRLOCK_CONNECTOR_BACKOFF_INITIAL_MS', 500, 10, 60_000),
    backoffMaxMs: int('AIRLOCK_CONNECTOR_BACKOFF_MAX_MS', 30_000, 100, 600_000),
  };
  if (problems.length > 0) throw new ConnectorConfigError(problems);
  return Object.freeze(config);
}
