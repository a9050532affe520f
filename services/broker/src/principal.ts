import type { AuditActor } from '@airlock/audit';
import { AppError, type Role } from '@airlock/domain';

/** Who is acting, as established by authentication. */
export interface Principal {
  readonly userId: string;
  readonly username: string;
  readonly roles: readonly Role[];
  readonly sessionId: string;
  readonly mfa: boolean;
  readonly scope: 'full' | 'totp_enrollment';
  readonly ip: string;
  /**
   * How the token came: a browser sends the cookie by itself, so decisions
   * made with it need a fresh second factor (step-up TOTP). Absent for
   * principals made outside HTTP.
   */
  readonly via?: 'bearer' | 'cookie';
}

export function hasRole(principal: Principal, ...roles: Role[]): boolean {
  return roles.some((r) => principal.roles.includes(r));
}

export function requireRole(principal: Principal, ...roles: Role[]): void {
  if (!hasRole(principal, ...roles))
    throw new AppError('auth.forbidden_role', { roles: roles.join(', ') });
}

export function actorOf(principal: Principal): AuditActor {
  return { kind: 'user', id: principal.userId, ip: principal.ip };
}
