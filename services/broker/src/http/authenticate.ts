import { AppError, type Role } from '@airlock/domain';
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { auditAlone } from '../audit.js';
import type { BrokerContext } from '../context.js';
import { findAuthSession } from '../features/auth/repository.js';
import { findUserById } from '../features/users/repository.js';
import type { Principal } from '../principal.js';

export const SESSION_COOKIE = 'airlock_session';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? '';
}

/**
 * A cookie travels with cross-site requests; a bearer header does not. So a
 * state-changing request authenticated by cookie must come from our own
 * origin (SameSite=Strict is the first line; this is the second).
 */
export function checkSameOrigin(request: {
  headers: { origin?: string | undefined; referer?: string | undefined; host?: string | undefined };
}): void {
  const origin = request.headers.origin ?? request.headers.referer;
  const host = request.headers.host;
  if (origin === undefined || host === undefined) throw new AppError('auth.csrf_failed');
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    throw new AppError('auth.csrf_failed');
  }
  if (originHost !== host) throw new AppError('auth.csrf_failed');
}

/**
 * The principal a token (bearer or cookie) stands for, or an error that looks
 * the same whatever was wrong. Invalid tokens and ended sessions are audited
 * (`auth.token_rejected`). Used by the route guard and the WebSocket upgrades.
 */
export async function principalFromToken(
  ctx: BrokerContext,
  token: string,
  context: { ip: string; route: string; via: 'bearer' | 'cookie' },
): Promise<Principal> {
  const { ip } = context;
  try {
    const claims = await ctx.tokens.verify(token);
    const session = await findAuthSession(ctx.pool, claims.sessionId);
    if (session === null || session.userId !== claims.userId)
      throw new AppError('auth.token_invalid');
    if (session.revokedAt !== null || session.expiresAt <= ctx.clock.now())
      throw new AppError('auth.session_ended');
    const user = await findUserById(ctx.pool, claims.userId);
    if (user === null || user.disabledAt !== null) throw new AppError('auth.token_invalid');
    return {
      userId: user.id,
      username: user.username,
      roles: user.roles,
      sessionId: session.id,
      mfa: claims.mfa,
      scope: claims.scope,
      ip,
      via: context.via,
    };
  } catch (err) {
    if (
      err instanceof AppError &&
      (err.code === 'auth.token_invalid' || err.code === 'auth.session_ended')
    ) {
      await auditAlone(ctx, {
        type: 'auth.token_rejected',
        actor: { kind: 'anonymous', ip },
        outcome: 'failure',
        data: { reason: err.code, route: context.route },
      });
    }
    throw err;
  }
}

export interface GuardOptions {
  /** Any one of these roles is enough; omitted = any signed-in user. */
  readonly roles?: readonly Role[];
  /** Routes a user must reach before enrolling TOTP (me, TOTP enrolment, logout). */
  readonly allowEnrollmentScope?: boolean;
}

/**
 * Establishes `request.principal` from a bearer token or the session cookie,
 * then checks the route's roles. Token failures are audited
 * (`auth.token_rejected`) and all look alike to the client.
 */
export function authenticate(
  ctx: BrokerContext,
  options: GuardOptions = {},
): onRequestAsyncHookHandler {
  return async function guard(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const ip = request.ip;
    const bearer = bearerToken(request);
    const cookie = request.cookies[SESSION_COOKIE];
    const token = bearer ?? cookie ?? null;
    if (token === null || token === '') throw new AppError('auth.token_missing');
    if (bearer === null && !SAFE_METHODS.has(request.method)) checkSameOrigin(request);
    const principal = await principalFromToken(ctx, token, {
      ip,
      route: request.routeOptions.url ?? request.url,
      via: bearer === null ? 'cookie' : 'bearer',
    });
    if (principal.scope === 'totp_enrollment' && options.allowEnrollmentScope !== true) {
      throw new AppError('auth.totp_enrollment_required');
    }
    const roles = options.roles;
    if (roles !== undefined && !roles.some((r) => principal.roles.includes(r))) {
      await auditAlone(ctx, {
        type: 'auth.permission_denied',
        actor: { kind: 'user', id: principal.userId, ip },
        outcome: 'failure',
        data: {
          method: request.method,
          route: request.routeOptions.url ?? request.url,
          required: [...roles],
        },
      });
      throw new AppError('auth.forbidden_role', { roles: roles.join(', ') });
    }
    request.principal = principal;
  };
}

/** The principal a guarded route was given; a route without a guard has none. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === null) throw new AppError('auth.token_missing');
  return request.principal;
}
