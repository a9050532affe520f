import { AppError } from './errors.js';
import { MINUTE_MS } from './clock.js';
import {
  CAPABILITIES,
  COMMAND_RULE_ACTIONS,
  DEFAULT_ZONE_POLICY,
  type Capability,
  type CommandRule,
  type ZonePolicy,
} from './model.js';

/** Limits that hold whatever a zone's policy says. */
export const POLICY_LIMITS = Object.freeze({
  maxRequiredApprovals: 5,
  maxWindowMinutes: 7 * 24 * 60,
  maxLeadDays: 90,
  /** How far in the past a requested start may lie (clock skew between browser and broker). */
  startSkewMinutes: 5,
  maxCommandRules: 200,
});

function isCapability(value: unknown): value is Capability {
  return typeof value === 'string' && (CAPABILITIES as readonly string[]).includes(value);
}

/**
 * Fills defaults into a (partial) policy and checks it. The route schema has
 * already checked types; this checks meaning (ranges, regex syntax).
 */
export function normalizeZonePolicy(
  input: Partial<ZonePolicy>,
  base: ZonePolicy = DEFAULT_ZONE_POLICY,
): ZonePolicy {
  const policy: ZonePolicy = { ...base, ...input };
  const problems: string[] = [];
  const intIn = (name: keyof ZonePolicy, min: number, max: number): void => {
    const v = policy[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}`);
    }
  };
  intIn('requiredApprovals', 1, POLICY_LIMITS.maxRequiredApprovals);
  intIn('maxWindowMinutes', 1, POLICY_LIMITS.maxWindowMinutes);
  intIn('idleTimeoutMinutes', 1, 24 * 60);
  intIn('pendingRequestTtlMinutes', 1, 30 * 24 * 60);
  if (!policy.allowedCapabilities.every(isCapability))
    problems.push('allowedCapabilities has an unknown capability');
  if (policy.commandRules.length > POLICY_LIMITS.maxCommandRules) {
    problems.push(`at most ${POLICY_LIMITS.maxCommandRules} command rules`);
  }
  policy.commandRules.forEach((rule: CommandRule, i) => {
    if (!(COMMAND_RULE_ACTIONS as readonly string[]).includes(rule.action))
      problems.push(`commandRules[${i}].action is unknown`);
    try {
      new RegExp(rule.pattern);
    } catch {
      problems.push(`commandRules[${i}].pattern is not a valid regular expression`);
    }
  });
  if (problems.length > 0)
    throw new AppError('zone.invalid_policy', { detail: problems.join('; ') });
  return Object.freeze({
    ...policy,
    allowedCapabilities: Object.freeze([...new Set(policy.allowedCapabilities)]),
    commandRules: Object.freeze(policy.commandRules.map((r) => Object.freeze({ ...r }))),
  });
}

export interface WindowInput {
  readonly startsAt?: Date | undefined;
  readonly endsAt?: Date | undefined;
  readonly durationMinutes?: number | undefined;
}

/**
 * What a vendor asked for: a fixed window, or a duration that starts when the
 * last approval arrives.
 */
export type RequestedWindow =
  | { readonly kind: 'fixed'; readonly startsAt: Date; readonly endsAt: Date }
  | { readonly kind: 'duration'; readonly minutes: number };

export function windowMinutes(window: RequestedWindow): number {
  return window.kind === 'duration'
    ? window.minutes
    : (window.endsAt.getTime() - window.startsAt.getTime()) / MINUTE_MS;
}

export function resolveRequestedWindow(input: WindowInput, now: Date): RequestedWindow {
  const invalid = (detail: string): AppError =>
    new AppError('access_request.invalid_window', { detail });
  if (input.durationMinutes !== undefined) {
    if (input.startsAt !== undefined || input.endsAt !== undefined) {
      throw invalid('give either durationMinutes or startsAt/endsAt, not both');
    }
    if (!Number.isInteger(input.durationMinutes) || input.durationMinutes < 1) {
      throw invalid('durationMinutes must be a whole number of at least 1');
    }
    return { kind: 'duration', minutes: input.durationMinutes };
  }
  if (input.endsAt === undefined)
    throw invalid('give endsAt (with an optional startsAt) or durationMinutes');
  const startsAt = input.startsAt ?? now;
  const endsAt = input.endsAt;
  if (Number.isNaN(startsAt.getTime()) || Number.isNaN(endsAt.getTime()))
    throw invalid('not a valid date-time');
  if (endsAt.getTime() <= startsAt.getTime()) throw invalid('endsAt must be after startsAt');
  if (startsAt.getTime() < now.getTime() - POLICY_LIMITS.startSkewMinutes * MINUTE_MS) {
    throw invalid('startsAt lies in the past');
  }
  if (startsAt.getTime() > now.getTime() + POLICY_LIMITS.maxLeadDays * 24 * 60 * MINUTE_MS) {
    throw invalid(`startsAt lies more than ${POLICY_LIMITS.maxLeadDays} days ahead`);
  }
  return { kind: 'fixed', startsAt, endsAt };
}

/** Zone policy caps the window and the capabilities of every zone the request touches. */
export function checkRequestAgainstPolicies(
  window: RequestedWindow,
  capabilities: readonly Capability[],
  zones: readonly { readonly id: string; readonly name: string; readonly policy: ZonePolicy }[],
): void {
  const minutes = windowMinutes(window);
  for (const zone of zones) {
    if (minutes > zone.policy.maxWindowMinutes) {
      throw new AppError('access_request.window_exceeds_policy', {
        minutes: Math.ceil(minutes),
        max: zone.policy.maxWindowMinutes,
        zone: zone.name,
      });
    }
    for (const capability of capabilities) {
      if (!zone.policy.allowedCapabilities.includes(capability)) {
        throw new AppError('access_request.capability_not_allowed', {
          capability,
          zone: zone.name,
        });
      }
    }
  }
}

export interface Interval {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * The window a grant gets once the quorum is met: the requested window (a
 * duration starts at the final approval), intersected with every narrowing an
 * approver asked for.
 */
export function effectiveGrantWindow(
  window: RequestedWindow,
  narrowings: readonly Partial<Interval>[],
  approvedAt: Date,
): Interval {
  let notBefore =
    window.kind === 'fixed'
      ? new Date(Math.max(window.startsAt.getTime(), approvedAt.getTime()))
      : approvedAt;
  let notAfter =
    window.kind === 'fixed'
      ? window.endsAt
      : new Date(approvedAt.getTime() + window.minutes * MINUTE_MS);
  for (const n of narrowings) {
    if (n.notBefore !== undefined && n.notBefore.getTime() > notBefore.getTime())
      notBefore = n.notBefore;
    if (n.notAfter !== undefined && n.notAfter.getTime() < notAfter.getTime())
      notAfter = n.notAfter;
  }
  return { notBefore, notAfter };
}

/** An approver may narrow the window, never widen it. */
export function checkNarrowing(
  window: RequestedWindow,
  narrowing: Partial<Interval>,
  now: Date,
): void {
  const bad = (detail: string): AppError =>
    new AppError('access_request.narrowing_invalid', { detail });
  const { notBefore, notAfter } = narrowing;
  if (
    notBefore !== undefined &&
    notAfter !== undefined &&
    notAfter.getTime() <= notBefore.getTime()
  ) {
    throw bad('notAfter must be after notBefore');
  }
  if (notAfter !== undefined && notAfter.getTime() <= now.getTime())
    throw bad('notAfter lies in the past');
  if (window.kind === 'fixed') {
    if (notBefore !== undefined && (notBefore < window.startsAt || notBefore >= window.endsAt)) {
      throw bad('notBefore is outside the requested window');
    }
    if (notAfter !== undefined && (notAfter <= window.startsAt || notAfter > window.endsAt)) {
      throw bad('notAfter is outside the requested window');
    }
  } else if (notBefore !== undefined) {
    throw bad('a duration request starts at approval; only notAfter can narrow it');
  }
}

export interface ZoneQuorum {
  readonly zoneId: string;
  readonly requiredApprovals: number;
}

export interface ApprovalVote {
  readonly zoneId: string;
  readonly approverId: string;
}

/**
 * N distinct approvals per zone: a request spanning two zones needs each
 * zone's quorum. Returns the zones still short of their quorum.
 */
export function zonesShortOfQuorum(
  zones: readonly ZoneQuorum[],
  votes: readonly ApprovalVote[],
): string[] {
  return zones
    .filter((zone) => {
      const distinct = new Set(
        votes.filter((v) => v.zoneId === zone.zoneId).map((v) => v.approverId),
      );
      return distinct.size < zone.requiredApprovals;
    })
    .map((zone) => zone.zoneId);
}
