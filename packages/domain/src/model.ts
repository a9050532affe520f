/** The vocabulary of Airlock (DESIGN.md, "Core model"). */

export const ROLES = ['admin', 'approver', 'auditor', 'vendor'] as const;
export type Role = (typeof ROLES)[number];

export const CAPABILITIES = ['shell', 'exec', 'sftp', 'forward', 'modbus_write'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export const ASSET_PROTOCOLS = ['ssh', 'tcp', 'modbus', 'http', 'rdp', 'vnc'] as const;
export type AssetProtocol = (typeof ASSET_PROTOCOLS)[number];

export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export const GRANT_STATUSES = ['scheduled', 'active', 'expired', 'revoked'] as const;
export type GrantStatus = (typeof GRANT_STATUSES)[number];

export const SESSION_END_REASONS = [
  'client_exit',
  'expired',
  'revoked',
  'terminated',
  'connector_lost',
  'broker_shutdown',
  'audit_failure',
] as const;
export type SessionEndReason = (typeof SESSION_END_REASONS)[number];

export const COMMAND_RULE_ACTIONS = ['block', 'alert'] as const;
export type CommandRuleAction = (typeof COMMAND_RULE_ACTIONS)[number];

export interface CommandRule {
  /** A JavaScript regular expression matched against the submitted command line. */
  readonly pattern: string;
  readonly action: CommandRuleAction;
  readonly description?: string;
}

export interface ZonePolicy {
  /** Distinct approvals of this zone's approvers needed before a grant exists. */
  readonly requiredApprovals: number;
  /** Longest window a request for this zone may ask for. */
  readonly maxWindowMinutes: number;
  readonly allowedCapabilities: readonly Capability[];
  readonly commandRules: readonly CommandRule[];
  readonly recordingMode: 'full';
  /** Sessions must be watched live by an approver (enforced by the console/gateway). */
  readonly supervised: boolean;
  readonly idleTimeoutMinutes: number;
  /** A request nobody decides on expires after this long. */
  readonly pendingRequestTtlMinutes: number;
}

const DEFAULT_CAPABILITIES: readonly Capability[] = Object.freeze<Capability[]>(['shell', 'exec']);
const NO_COMMAND_RULES: readonly CommandRule[] = Object.freeze<CommandRule[]>([]);

export const DEFAULT_ZONE_POLICY: ZonePolicy = Object.freeze({
  requiredApprovals: 1,
  maxWindowMinutes: 8 * 60,
  allowedCapabilities: DEFAULT_CAPABILITIES,
  commandRules: NO_COMMAND_RULES,
  recordingMode: 'full',
  supervised: false,
  idleTimeoutMinutes: 30,
  pendingRequestTtlMinutes: 24 * 60,
});

/** The grant's status follows from time alone, plus revocation. */
export function grantStatusAt(
  grant: { readonly notBefore: Date; readonly notAfter: Date; readonly revokedAt: Date | null },
  now: Date,
): GrantStatus {
  if (grant.revokedAt !== null) return 'revoked';
  const t = now.getTime();
  if (t < grant.notBefore.getTime()) return 'scheduled';
  if (t >= grant.notAfter.getTime()) return 'expired';
  return 'active';
}

/**
 * DESIGN invariant 1: a grant opens a path only inside [notBefore, notAfter),
 * when not revoked, for its own asset and capability.
 */
export function grantCovers(
  grant: {
    readonly notBefore: Date;
    readonly notAfter: Date;
    readonly revokedAt: Date | null;
    readonly assetId: string;
    readonly capabilities: readonly Capability[];
  },
  assetId: string,
  capability: Capability,
  now: Date,
): boolean {
  return (
    grantStatusAt(grant, now) === 'active' &&
    grant.assetId === assetId &&
    grant.capabilities.includes(capability)
  );
}
