import { Type } from 'typebox';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf, SESSION_COOKIE } from '../../http/authenticate.js';
import { errorResponses, strictObject, Timestamp } from '../../http/schemas.js';
import { getUserById, toPublicUser } from '../users/repository.js';
import { PublicUserSchema } from '../users/schemas.js';
import {
  confirmTotpEnrollment,
  issueToken,
  login,
  logout,
  startTotpEnrollment,
} from './service.js';
import { findAuthSession } from './repository.js';
import { AppError } from '@airlock/domain';

const TokenResponse = Type.Object({
  token: Type.String(),
  expiresAt: Timestamp,
});

export function authRoutes(app: App, ctx: BrokerContext): void {
  const setCookie = (
    reply: { setCookie: (n: string, v: string, o: object) => unknown },
    token: string,
    expiresAt: Date,
  ): void => {
    reply.setCookie(SESSION_COOKIE, token, {
      httpOnly: true,
      sameSite: 'strict',
      secure: ctx.config.cookieSecure,
      path: '/',
      expires: expiresAt,
    });
  };

  app.post(
    '/api/v1/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Sign in with password and (where enrolled) a TOTP code',
        body: strictObject({
          username: Type.String({ minLength: 1, maxLength: 64 }),
          password: Type.String({ minLength: 1, maxLength: 1024 }),
          totp: Type.Optional(Type.String({ pattern: '^[0-9]{6,8}$' })),
        }),
        response: {
          200: Type.Object({
            token: Type.String(),
            expiresAt: Timestamp,
            user: PublicUserSchema,
            totpEnrollmentRequired: Type.Boolean(),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const result = await login(ctx, {
        username: request.body.username,
        password: request.body.password,
        totp: request.body.totp,
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
      });
      setCookie(reply, result.token, result.expiresAt);
      return { ...result, expiresAt: result.expiresAt.toISOString() };
    },
  );

  app.post(
    '/api/v1/auth/logout',
    {
      onRequest: authenticate(ctx, { allowEnrollmentScope: true }),
      schema: {
        tags: ['auth'],
        summary: 'End this sign-in session (the token stops working)',
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await logout(ctx, principalOf(request));
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/v1/auth/refresh',
    {
      onRequest: authenticate(ctx, { allowEnrollmentScope: true }),
      schema: {
        tags: ['auth'],
        summary: 'A fresh short-lived token for the same sign-in session',
        response: { 200: TokenResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const session = await findAuthSession(ctx.pool, principal.sessionId);
      if (session === null) throw new AppError('auth.session_ended');
      const issued = await issueToken(ctx, {
        userId: principal.userId,
        sessionId: principal.sessionId,
        mfa: principal.mfa,
        scope: principal.scope,
        sessionExpiresAt: session.expiresAt,
      });
      setCookie(reply, issued.token, issued.expiresAt);
      return { token: issued.token, expiresAt: issued.expiresAt.toISOString() };
    },
  );

  app.get(
    '/api/v1/me',
    {
      onRequest: authenticate(ctx, { allowEnrollmentScope: true }),
      schema: {
        tags: ['me'],
        summary: 'The signed-in user',
        response: {
          200: Type.Object({ user: PublicUserSchema, totpEnrollmentRequired: Type.Boolean() }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const user = await getUserById(ctx.pool, principal.userId);
      return {
        user: toPublicUser(user),
        totpEnrollmentRequired: principal.scope === 'totp_enrollment',
      };
    },
  );

  app.post(
    '/api/v1/me/totp',
    {
      onRequest: authenticate(ctx, { allowEnrollmentScope: true }),
      schema: {
        tags: ['me'],
        summary: 'Start TOTP enrolment: returns the secret once, as text and as an otpauth:// URI',
        response: {
          200: Type.Object({ secret: Type.String(), otpauthUri: Type.String() }),
          ...errorResponses,
        },
      },
    },
    async (request) => startTotpEnrollment(ctx, principalOf(request)),
  );

  app.post(
    '/api/v1/me/totp/confirm',
    {
      onRequest: authenticate(ctx, { allowEnrollmentScope: true }),
      schema: {
        tags: ['me'],
        summary: 'Confirm TOTP enrolment with a current code; returns a full-scope token',
        body: strictObject({ code: Type.String({ pattern: '^[0-9]{6}$' }) }),
        response: { 200: TokenResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const issued = await confirmTotpEnrollment(ctx, principalOf(request), request.body.code);
      setCookie(reply, issued.token, issued.expiresAt);
      return { token: issued.token, expiresAt: issued.expiresAt.toISOString() };
    },
  );
}
