import { Type } from 'typebox';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf } from '../../http/authenticate.js';
import { errorResponses, IdParams, strictObject, Id } from '../../http/schemas.js';
import {
  getUserById,
  listSshKeys,
  listUsers,
  toPublicUser,
  type SshKeyRecord,
} from './repository.js';
import { PublicUserSchema, RoleSchema, SshKeySchema } from './schemas.js';
import {
  addSshKey,
  configureWebhook,
  createUser,
  removeSshKey,
  resetPasswordIn,
  resetTotp,
  updateUserByAdmin,
} from './service.js';
import { withTransaction } from '@airlock/db';
import { actorOf } from '../../principal.js';

const Username = Type.String({ pattern: '^[a-z][a-z0-9._-]{0,63}$' });
const Password = Type.String({ minLength: 1, maxLength: 1024 });

function keyView(k: SshKeyRecord) {
  return {
    id: k.id,
    name: k.name,
    algorithm: k.algorithm,
    fingerprint: k.fingerprint,
    publicKey: k.publicKey,
    createdAt: k.createdAt.toISOString(),
  };
}

export function userRoutes(app: App, ctx: BrokerContext): void {
  const admin = authenticate(ctx, { roles: ['admin'] });
  const adminOrAuditor = authenticate(ctx, { roles: ['admin', 'auditor'] });
  const signedIn = authenticate(ctx);

  app.post(
    '/api/v1/users',
    {
      onRequest: admin,
      schema: {
        tags: ['users'],
        summary: 'Create a user (admin)',
        body: strictObject({
          username: Username,
          password: Password,
          roles: Type.Array(RoleSchema, { minItems: 1, maxItems: 4, uniqueItems: true }),
          organization: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        }),
        response: { 201: PublicUserSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createUser(ctx, principalOf(request), request.body)),
  );

  app.get(
    '/api/v1/users',
    {
      onRequest: adminOrAuditor,
      schema: {
        tags: ['users'],
        summary: 'List users (admin, auditor)',
        querystring: strictObject({ role: Type.Optional(RoleSchema) }),
        response: { 200: Type.Object({ users: Type.Array(PublicUserSchema) }), ...errorResponses },
      },
    },
    async (request) => ({
      users: (await listUsers(ctx.pool, { role: request.query.role })).map(toPublicUser),
    }),
  );

  app.get(
    '/api/v1/users/:id',
    {
      onRequest: adminOrAuditor,
      schema: {
        tags: ['users'],
        params: IdParams('user'),
        response: { 200: PublicUserSchema, ...errorResponses },
      },
    },
    async (request) => toPublicUser(await getUserById(ctx.pool, request.params.id)),
  );

  app.patch(
    '/api/v1/users/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['users'],
        summary:
          'Change roles, display name, or disable a user (admin); ends their sign-in sessions',
        params: IdParams('user'),
        body: strictObject({
          roles: Type.Optional(
            Type.Array(RoleSchema, { minItems: 1, maxItems: 4, uniqueItems: true }),
          ),
          displayName: Type.Optional(
            Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()]),
          ),
          disabled: Type.Optional(Type.Boolean()),
        }),
        response: { 200: PublicUserSchema, ...errorResponses },
      },
    },
    async (request) =>
      updateUserByAdmin(ctx, principalOf(request), request.params.id, request.body),
  );

  app.post(
    '/api/v1/users/:id/password',
    {
      onRequest: admin,
      schema: {
        tags: ['users'],
        summary: 'Reset a password (admin); ends the user’s sign-in sessions and lifts a lockout',
        params: IdParams('user'),
        body: strictObject({ password: Password }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await withTransaction(ctx.pool, (client) =>
        resetPasswordIn(client, ctx, actorOf(principal), request.params.id, request.body.password),
      );
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/v1/users/:id/totp/reset',
    {
      onRequest: admin,
      schema: {
        tags: ['users'],
        summary: 'Remove a user’s TOTP (lost device); they must enrol again',
        params: IdParams('user'),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await resetTotp(ctx, principalOf(request), request.params.id);
      return reply.status(204).send(null);
    },
  );

  app.get(
    '/api/v1/me/ssh-keys',
    {
      onRequest: signedIn,
      schema: {
        tags: ['me'],
        response: { 200: Type.Object({ keys: Type.Array(SshKeySchema) }), ...errorResponses },
      },
    },
    async (request) => ({
      keys: (await listSshKeys(ctx.pool, principalOf(request).userId)).map(keyView),
    }),
  );

  app.post(
    '/api/v1/me/ssh-keys',
    {
      onRequest: signedIn,
      schema: {
        tags: ['me'],
        summary:
          'Register an SSH public key (authorized_keys format); fingerprints are unique across users',
        body: strictObject({
          publicKey: Type.String({ minLength: 1, maxLength: 16384 }),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
        }),
        response: { 201: SshKeySchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(keyView(await addSshKey(ctx, principalOf(request), request.body))),
  );

  app.delete(
    '/api/v1/me/ssh-keys/:id',
    {
      onRequest: signedIn,
      schema: {
        tags: ['me'],
        params: strictObject({ id: Id('sshKey') }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await removeSshKey(ctx, principalOf(request), request.params.id);
      return reply.status(204).send(null);
    },
  );

  app.put(
    '/api/v1/me/webhook',
    {
      onRequest: signedIn,
      schema: {
        tags: ['me'],
        summary:
          'Set (or clear, with null) the endpoint that receives signed notifications; the signing secret is returned once',
        body: strictObject({
          url: Type.Union([Type.String({ minLength: 1, maxLength: 2000 }), Type.Null()]),
        }),
        response: {
          200: Type.Object({ secret: Type.Union([Type.String(), Type.Null()]) }),
          ...errorResponses,
        },
      },
    },
    async (request) => configureWebhook(ctx, principalOf(request), request.body.url),
  );
}
