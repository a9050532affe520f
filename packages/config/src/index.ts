/**
 * The broker's configuration: parsed from the environment once, against a
 * schema, with every problem reported together, then frozen. This is the only
 * module that reads `process.env`. Secrets may come from `<NAME>_FILE`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ROLES, Secret, type Role } from '@airlock/domain';

export interface AirlockConfig {
  /** Unset: the broker runs an embedded PostgreSQL under dataDir. */
  readonly databaseUrl: Secret<string> | null;
  /** Unset: lifecycle jobs run in-process (single node only). */
  readonly redisUrl: Secret<string> | null;
  readonly dataDir: string;
  readonly bind: string;
  readonly httpPort: number;
  readonly sshPort: number;
  readonly adminPassword: Secret<string> | null;
  /** Base64 or hex, 32 bytes. Unset: generated into dataDir on first start. */
  readonly masterKey: Secret<string> | null;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Access tokens are short-lived; the sign-in session behind them lasts longer. */
  readonly accessTokenTtlSeconds: number;
  readonly authSessionTtlSeconds: number;
  /** IEC 62443-3-3 SR 1.11: unsuccessful login attempts. */
  readonly lockoutThreshold: number;
  readonly lockoutMinutes: number;
  readonly totpRequiredRoles: readonly Role[];
  readonly cookieSecure: boolean;
  readonly bodyLimitBytes: number;
  readonly auditCheckpointMinutes: number;
  readonly jobPollIntervalMs: number;
  readonly minPasswordLength: number;
  /**
   * A broker replica whose heartbeat is older than this is taken as crashed:
   * the others close its sessions (`broker_shutdown`). Replicas heartbeat at
   * a third of it (at most every 5 s), so a live one is never taken for dead.
   */
  readonly instanceStaleSeconds: number;
  /**
   * The base URL connectors use to reach this replica (advertised to them in
   * `broker_instances`). Unset: `http://<bound address>` (fine on loopback only).
   */
  readonly publicUrl: string | null;
  /** Ping interval on connector links; a link silent for two intervals is lost. */
  readonly connectorHeartbeatMs: number;
  /**
   * Interactive first: while anyone is typing in a shell, the gateway's bulk
   * channels (exec, SFTP/scp, forwarded ports) share this many MiB/s between
   * them, so that the machine keeps CPU for every hop of a keystroke's echo.
   * 0: never paced.
   */
  readonly bulkMiBpsWhileInteractive: number;
  /**
   * Private, loopback or other special-purpose ranges webhooks may reach
   * (comma-separated CIDRs or addresses); all others of them are refused.
   */
  readonly webhookAllowedCidrs: readonly string[];
}

/** One address range: `10.20.0.0/16`, `fd00::/8`, or an address alone (a /32 or /128). */
export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** Parses one range strictly (no zone ids, extra slashes or leading zeros), or says why not. */
export function parseCidr(text: string): Cidr | { readonly problem: string } {
  const cidr = /^([^/%]+)(?:\/(0|[1-9]\d{0,2}))?$/.exec(text);
  const family = isIP(cidr?.[1] ?? '');
  if (cidr?.[1] === undefined || family === 0)
    return { problem: `${text} is not an IP address or CIDR range` };
  const max = family === 4 ? 32 : 128;
  const prefix = cidr[2] === undefined ? max : Number(cidr[2]);
  if (prefix > max) return { problem: `${text} has no valid prefix length (0 to ${max})` };
  return { address: cidr[1], prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env): AirlockConfig {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const secret = (name: string): Secret<string> | null => {
    const direct = text(name);
    const file = text(`${name}_FILE`);
    if (direct !== undefined && file !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set; set one`);
      return null;
    }
    if (file !== undefined) {
      try {
        return new Secret(readFileSync(file, 'utf8').trim());
      } catch (err) {
        problems.push(
          `${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
        return null;
      }
    }
    return direct === undefined ? null : new Secret(direct);
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = text(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  };
  const cidrs = (name: string): string[] => {
    const parts = (text(name) ?? '').split(',').map((p) => p.trim());
    const list = parts.filter((p) => p !== '');
    const bad = list.filter((part) => 'problem' in parseCidr(part));
    if (bad.length > 0)
      problems.push(`${name} must list IP addresses or CIDR ranges (not ${bad.join(', ')})`);
    return bad.length > 0 ? [] : list;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      problems.push(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
      return fallback;
    }
    return raw as T;
  };

  const databaseUrl = secret('DATABASE_URL');
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl.reveal())) {
    problems.push('DATABASE_URL must be a postgres:// URL');
  }
  const redisUrl = secret('REDIS_URL');
  if (redisUrl !== null && !/^rediss?:\/\//.test(redisUrl.reveal()))
    problems.push('REDIS_URL must be a redis:// or rediss:// URL');

  const rolesRaw = text('AIRLOCK_TOTP_REQUIRED_ROLES');
  let totpRequiredRoles: Role[] = ['admin', 'approver'];
  if (rolesRaw !== undefined) {
    const parts = rolesRaw === 'none' ? [] : rolesRaw.split(',').map((r) => r.trim());
    const unknown = parts.filter((r) => !(ROLES as readonly string[]).includes(r));
    if (unknown.length > 0)
      problems.push(`AIRLOCK_TOTP_REQUIRED_ROLES has unknown roles: ${unknown.join(', ')}`);
    else totpRequiredRoles = parts as Role[];
  }

  const production = text('NODE_ENV') === 'production';
  const config: AirlockConfig = {
    databaseUrl,
    redisUrl,
    dataDir: resolve(text('AIRLOCK_DATA_DIR') ?? './data'),
    bind: text('AIRLOCK_BIND') ?? '127.0.0.1',
    httpPort: int('AIRLOCK_HTTP_PORT', 8080, 0, 65535),
    sshPort: int('AIRLOCK_SSH_PORT', 2222, 0, 65535),
    adminPassword: secret('AIRLOCK_ADMIN_PASSWORD'),
    masterKey: secret('AIRLOCK_MASTER_KEY'),
    logLevel: oneOf(
      'AIRLOCK_LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'info',
    ),
    accessTokenTtlSeconds: int('AIRLOCK_ACCESS_TOKEN_TTL_SECONDS', 15 * 60, 30, 24 * 3600),
    authSessionTtlSeconds: int('AIRLOCK_SESSION_TTL_SECONDS', 12 * 3600, 60, 7 * 24 * 3600),
    lockoutThreshold: int('AIRLOCK_LOCKOUT_THRESHOLD', 5, 1, 100),
    lockoutMinutes: int('AIRLOCK_LOCKOUT_MINUTES', 15, 1, 24 * 60),
    totpRequiredRoles,
    cookieSecure: bool('AIRLOCK_COOKIE_SECURE', production),
    bodyLimitBytes: int('AIRLOCK_BODY_LIMIT_BYTES', 64 * 1024, 1024, 16 * 1024 * 1024),
    auditCheckpointMinutes: int('AIRLOCK_AUDIT_CHECKPOINT_MINUTES', 5, 1, 24 * 60),
    jobPollIntervalMs: int('AIRLOCK_JOB_POLL_INTERVAL_MS', 1000, 50, 60_000),
    minPasswordLength: int('AIRLOCK_MIN_PASSWORD_LENGTH', 12, 8, 128),
    instanceStaleSeconds: int('AIRLOCK_INSTANCE_STALE_SECONDS', 30, 3, 3600),
    publicUrl: text('AIRLOCK_PUBLIC_URL')?.replace(/\/+$/, '') ?? null,
    connectorHeartbeatMs: int('AIRLOCK_CONNECTOR_HEARTBEAT_MS', 5000, 100, 60_000),
    bulkMiBpsWhileInteractive: int('AIRLOCK_BULK_MIBPS_WHILE_INTERACTIVE', 16, 0, 100_000),
    webhookAllowedCidrs: cidrs('AIRLOCK_WEBHOOK_ALLOWED_CIDRS'),
  };
  if (config.publicUrl !== null && !/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(config.publicUrl))
    problems.push(
      'AIRLOCK_PUBLIC_URL must be an http:// or https:// URL without query or fragment',
    );
  if (
    config.adminPassword !== null &&
    config.adminPassword.reveal().length < config.minPasswordLength
  ) {
    problems.push(`AIRLOCK_ADMIN_PASSWORD must be at least ${config.minPasswordLength} characters`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** A config for tests and tools: defaults, overridden field by field. */
export function configForTest(overrides: Partial<AirlockConfig> = {}): AirlockConfig {
  return Object.freeze({ ...loadConfig({}), ...overrides });
}
