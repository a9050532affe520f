import {
  base32Encode,
  generateTotpSecret,
  totpUri,
  verifyPassword,
  verifyPasswordDummy,
  verifyTotp,
} from '@airlock/crypto';
import { withTransaction } from '@airlock/db';
import { AppError, newId, type Role } from '@airlock/domain';
import { audit, auditAlone } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import type { Principal } from '../../principal.js';
import {
  advanceTotpStep,
  findUserByUsername,
  getUserById,
  toPublicUser,
  updateUser,
  type PublicUser,
  type UserRecord,
} from '../users/repository.js';
import {
  clearThrottle,
  getThrottle,
  insertAuthSession,
  recordLoginFailure,
  revokeAuthSession,
  setAuthSessionMfa,
  type ThrottleState,
} from './repository.js';

export interface LoginResult {
  readonly token: string;
  readonly expiresAt: Date;
  readonly user: PublicUser;
  /** True when the user's role requires TOTP and none is enrolled yet: the token can only enrol. */
  readonly totpEnrollmentRequired: boolean;
}

export function totpRequiredFor(ctx: BrokerContext, roles: readonly Role[]): boolean {
  return roles.some((r) => ctx.config.totpRequiredRoles.includes(r));
}

export function totpAad(userId: string): string {
  return `user:${userId}:totp`;
}

function normalizeUsername(username: string): string {
  return username.trim().toLowerCase();
}

type LoginFailure =
  'unknown_user' | 'bad_password' | 'bad_totp' | 'totp_missing' | 'disabled' | 'locked';

/**
 * Password + TOTP sign-in. Every failure looks the same from outside
 * (`auth.invalid_credentials`), except a missing code after a correct
 * password (the client must ask for it) and a lockout (IEC 62443-3-3 SR 1.11),
 * which is tracked per username whether or not the user exists, so it
 * reveals nothing either.
 */
export async function login(
  ctx: BrokerContext,
  input: {
    username: string;
    password: string;
    totp?: string | undefined;
    ip: string;
    userAgent: string | null;
  },
): Promise<LoginResult> {
  const username = normalizeUsername(input.username);
  const now = ctx.clock.now();
  const anonymous = { kind: 'anonymous', ip: input.ip } as const;

  const throttle = await getThrottle(ctx.pool, username);
  if (throttle?.lockedUntil != null && throttle.lockedUntil > now) {
    await auditAlone(ctx, {
      type: 'user.login_failed',
      actor: anonymous,
      outcome: 'failure',
      data: { username, reason: 'locked' },
    });
    ctx.metrics.logins.inc({ outcome: 'locked' });
    throw lockedError(throttle.lockedUntil, now);
  }

  const user = await findUserByUsername(ctx.pool, username);
  let failure: LoginFailure | null = null;
  let totpStep: number | null = null;
  if (user === null) {
    await verifyPasswordDummy(input.password);
    failure = 'unknown_user';
  } else if (!(await verifyPassword(input.password, user.passwordHash))) {
    failure = 'bad_password';
  } else if (user.disabledAt !== null) {
    failure = 'disabled';
  } else if (user.totpSecret !== null) {
    if (input.totp === undefined || input.totp === '') {
      failure = 'totp_missing';
    } else {
      const secret = ctx.vault.open(user.totpSecret, totpAad(user.id));
      totpStep = verifyTotp(secret.reveal(), input.totp, now.getTime(), {
        lastUsedStep: user.totpLastStep,
      });
      if (totpStep === null || !(await advanceTotpStep(ctx.pool, user.id, totpStep)))
        failure = 'bad_totp';
    }
  }

  if (failure !== null) {
    const state = await recordFailedLogin(ctx, username, user, failure, input.ip, now);
    if (failure === 'totp_missing') throw new AppError('auth.totp_required');
    // Guesses sent in parallel all passed the lock check above before any had
    // failed; the ones counted past the threshold are answered as locked, so
    // no more than `lockoutThreshold` guesses ever get an answer.
    if (state?.lockedUntil != null && state.failures > ctx.config.lockoutThreshold)
      throw lockedError(state.lockedUntil, now);
    throw new AppError('auth.invalid_credentials');
  }
  if (user === null) throw new AppError('auth.invalid_credentials'); // unreachable: narrows the type

  const enrollmentOnly = user.totpSecret === null && totpRequiredFor(ctx, user.roles);
  const sessionId = newId('authSession');
  const sessionExpiresAt = new Date(now.getTime() + ctx.config.authSessionTtlSeconds * 1000);
  const lockedMeanwhile = await withTransaction(ctx.pool, async (client) => {
    // Likewise, a right guess among parallel wrong ones must not get in once
    // they have locked the account (the row lock orders us after them).
    const current = await getThrottle(client, username, { forUpdate: true });
    if (current?.lockedUntil != null && current.lockedUntil > now) return current.lockedUntil;
    await clearThrottle(client, username);
    await insertAuthSession(client, {
      id: sessionId,
      userId: user.id,
      mfa: totpStep !== null,
      sourceIp: input.ip,
      userAgent: input.userAgent,
      createdAt: now,
      expiresAt: sessionExpiresAt,
    });
    await audit(client, ctx, {
      type: 'user.login',
      actor: { kind: 'user', id: user.id, ip: input.ip },
      subjectId: user.id,
      data: {
        sessionId,
        mfa: totpStep !== null,
        scope: enrollmentOnly ? 'totp_enrollment' : 'full',
      },
    });
    return null;
  });
  if (lockedMeanwhile !== null) {
    await auditAlone(ctx, {
      type: 'user.login_failed',
      actor: anonymous,
      subjectId: user.id,
      outcome: 'failure',
      data: { username, reason: 'locked' },
    });
    ctx.metrics.logins.inc({ outcome: 'locked' });
    throw lockedError(lockedMeanwhile, now);
  }
  ctx.metrics.logins.inc({ outcome: 'success' });
  const issued = await issueToken(ctx, {
    userId: user.id,
    sessionId,
    mfa: totpStep !== null,
    scope: enrollmentOnly ? 'totp_enrollment' : 'full',
    sessionExpiresAt,
  });
  return { ...issued, user: toPublicUser(user), totpEnrollmentRequired: enrollmentOnly };
}

function lockedError(until: Date, now: Date): AppError {
  const retryAfter = Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000));
  return new AppError(
    'auth.locked',
    { until: until.toISOString() },
    { headers: { 'retry-after': String(retryAfter) } },
  );
}

async function recordFailedLogin(
  ctx: BrokerContext,
  username: string,
  user: UserRecord | null,
  reason: LoginFailure,
  ip: string,
  now: Date,
): Promise<ThrottleState | null> {
  // A correct password without its code is the first half of a sign-in, not a guess.
  const counts = reason !== 'totp_missing';
  const counted = await withTransaction(ctx.pool, async (client) => {
    const state = counts
      ? await recordLoginFailure(client, username, now, {
          threshold: ctx.config.lockoutThreshold,
          lockoutMs: ctx.config.lockoutMinutes * 60_000,
        })
      : null;
    const actor = { kind: 'anonymous', ip } as const;
    await audit(client, ctx, {
      type: 'user.login_failed',
      actor,
      subjectId: user?.id ?? null,
      outcome: 'failure',
      data: { username, reason, failures: state?.failures ?? 0 },
    });
    if (state?.lockedUntil != null && state.failures === ctx.config.lockoutThreshold) {
      await audit(client, ctx, {
        type: 'user.locked',
        actor,
        subjectId: user?.id ?? null,
        outcome: 'failure',
        data: { username, lockedUntil: state.lockedUntil.toISOString(), failures: state.failures },
      });
    }
    return state;
  });
  ctx.metrics.logins.inc({ outcome: 'failure' });
  return counted;
}

export async function issueToken(
  ctx: BrokerContext,
  claims: {
    userId: string;
    sessionId: string;
    mfa: boolean;
    scope: 'full' | 'totp_enrollment';
    sessionExpiresAt: Date;
  },
): Promise<{ token: string; expiresAt: Date }> {
  const { token, expiresAt } = await ctx.tokens.issue({
    userId: claims.userId,
    sessionId: claims.sessionId,
    mfa: claims.mfa,
    scope: claims.scope,
  });
  return {
    token,
    expiresAt: expiresAt < claims.sessionExpiresAt ? expiresAt : claims.sessionExpiresAt,
  };
}

export async function logout(ctx: BrokerContext, principal: Principal): Promise<void> {
  await withTransaction(ctx.pool, async (client) => {
    await revokeAuthSession(client, principal.sessionId, ctx.clock.now());
    await audit(client, ctx, {
      type: 'user.logout',
      actor: { kind: 'user', id: principal.userId, ip: principal.ip },
      subjectId: principal.userId,
      data: { sessionId: principal.sessionId },
    });
  });
}

/** Starts (or restarts) TOTP enrolment: a new secret, pending until a code confirms it. */
export async function startTotpEnrollment(
  ctx: BrokerContext,
  principal: Principal,
): Promise<{ secret: string; otpauthUri: string }> {
  const secret = generateTotpSecret();
  await withTransaction(ctx.pool, async (client) => {
    const user = await getUserById(client, principal.userId, { forUpdate: true });
    if (user.totpSecret !== null) throw new AppError('totp.already_enrolled');
    await updateUser(
      client,
      user.id,
      { totpPendingSecret: ctx.vault.seal(secret, totpAad(user.id)) },
      ctx.clock.now(),
    );
    await audit(client, ctx, {
      type: 'user.totp_enrollment_started',
      actor: { kind: 'user', id: principal.userId, ip: principal.ip },
      subjectId: user.id,
    });
  });
  return {
    secret: base32Encode(secret),
    otpauthUri: totpUri({ secret, account: principal.username, issuer: 'Airlock' }),
  };
}

/** A correct code makes the pending secret the user's TOTP secret; the session becomes MFA-verified. */
export async function confirmTotpEnrollment(
  ctx: BrokerContext,
  principal: Principal,
  code: string,
): Promise<{ token: string; expiresAt: Date }> {
  const now = ctx.clock.now();
  const sessionExpiresAt = await withTransaction(ctx.pool, async (client) => {
    const user = await getUserById(client, principal.userId, { forUpdate: true });
    if (user.totpSecret !== null) throw new AppError('totp.already_enrolled');
    if (user.totpPendingSecret === null) throw new AppError('totp.not_started');
    const secret = ctx.vault.open(user.totpPendingSecret, totpAad(user.id));
    const step = verifyTotp(secret.reveal(), code, now.getTime(), { lastUsedStep: null });
    if (step === null) throw new AppError('totp.invalid_code');
    await updateUser(
      client,
      user.id,
      {
        totpSecret: user.totpPendingSecret,
        totpEnabledAt: now,
        totpPendingSecret: null,
        totpLastStep: step,
      },
      now,
    );
    await setAuthSessionMfa(client, principal.sessionId);
    await audit(client, ctx, {
      type: 'user.totp_enrolled',
      actor: { kind: 'user', id: principal.userId, ip: principal.ip },
      subjectId: user.id,
    });
    const { rows } = await client.query<{ expires_at: Date }>(
      'select expires_at from auth_sessions where id = $1',
      [principal.sessionId],
    );
    return rows[0]?.expires_at ?? now;
  });
  return issueToken(ctx, {
    userId: principal.userId,
    sessionId: principal.sessionId,
    mfa: true,
    scope: 'full',
    sessionExpiresAt,
  });
}

/**
 * Step-up authentication before a decision (approve, deny): a fresh TOTP code,
 * so a hijacked browser session alone cannot open a plant (IEC 62443-3-3
 * SR 1.1 RE 2). Required when the request came with the session cookie; over
 * a bearer token a code is checked when given (API clients keep working as
 * before). Users without TOTP have no second factor to step up with. A code is
 * used once, like at sign-in; a wrong one counts towards the lockout.
 */
export async function verifyStepUp(
  ctx: BrokerContext,
  principal: Principal,
  code: string | undefined,
  action: string,
): Promise<void> {
  const user = await getUserById(ctx.pool, principal.userId);
  if (user.totpSecret === null) return;
  if (code === undefined || code === '') {
    if (principal.via === 'cookie') throw new AppError('auth.step_up_required');
    return;
  }
  const now = ctx.clock.now();
  const secret = ctx.vault.open(user.totpSecret, totpAad(user.id));
  const step = verifyTotp(secret.reveal(), code, now.getTime(), {
    lastUsedStep: user.totpLastStep,
  });
  if (step !== null && (await advanceTotpStep(ctx.pool, user.id, step))) return;
  await withTransaction(ctx.pool, async (client) => {
    const state = await recordLoginFailure(client, user.username, now, {
      threshold: ctx.config.lockoutThreshold,
      lockoutMs: ctx.config.lockoutMinutes * 60_000,
    });
    await audit(client, ctx, {
      type: 'auth.step_up_failed',
      actor: { kind: 'user', id: user.id, ip: principal.ip },
      subjectId: user.id,
      outcome: 'failure',
      data: { action, failures: state.failures },
    });
  });
  throw new AppError('auth.step_up_failed');
}
