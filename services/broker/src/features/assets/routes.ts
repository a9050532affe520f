import { ASSET_PROTOCOLS } from '@airlock/domain';
import { parseSshPublicKey } from '@airlock/crypto';
import { Type } from 'typebox';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf } from '../../http/authenticate.js';
import {
  errorResponses,
  Id,
  IdParams,
  NullableString,
  strictObject,
  Timestamp,
  literalUnion,
} from '../../http/schemas.js';
import { hasRole, type Principal } from '../../principal.js';
import { getAsset, listAssets, type AssetRecord } from './repository.js';
import { createAsset, updateAsset } from './service.js';

const ProtocolSchema = literalUnion(ASSET_PROTOCOLS);
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const CredentialKind = Type.Union([Type.Literal('password'), Type.Literal('private_key')]);

/**
 * The response shape of an asset. There is deliberately no credential field:
 * the serializer drops anything not listed (DESIGN invariant 6).
 */
const AssetSchema = Type.Object({
  id: Id('asset'),
  name: Type.String(),
  zoneId: Id('zone'),
  protocol: ProtocolSchema,
  description: NullableString,
  host: Type.Optional(Type.String()),
  port: Type.Optional(Type.Integer()),
  login: Type.Optional(NullableString),
  hasCredential: Type.Optional(Type.Boolean()),
  credentialKind: Type.Optional(NullableString),
  hostKey: Type.Optional(NullableString),
  hostKeyFingerprint: Type.Optional(NullableString),
  forwardPorts: Type.Optional(Type.Array(Type.Integer())),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

/** Vendors see what they can ask for, not where it lives. */
function assetView(a: AssetRecord, principal: Principal) {
  const base = {
    id: a.id,
    name: a.name,
    zoneId: a.zoneId,
    protocol: a.protocol,
    description: a.description,
    createdAt: a.createdAt.toISOString(),
    updatedAt: a.updatedAt.toISOString(),
  };
  if (!hasRole(principal, 'admin', 'approver', 'auditor')) return base;
  return {
    ...base,
    host: a.host,
    port: a.port,
    login: a.login,
    hasCredential: a.sealedCredential !== null,
    credentialKind: a.credentialKind,
    hostKey: a.hostKey,
    hostKeyFingerprint: a.hostKey === null ? null : parseSshPublicKey(a.hostKey).fingerprint,
    forwardPorts: [...a.forwardPorts],
  };
}

export function assetRoutes(app: App, ctx: BrokerContext): void {
  const admin = authenticate(ctx, { roles: ['admin'] });
  const signedIn = authenticate(ctx);

  app.post(
    '/api/v1/assets',
    {
      onRequest: admin,
      schema: {
        tags: ['assets'],
        summary: 'Register an asset (admin); the credential is write-only',
        body: strictObject({
          name: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' }),
          zoneId: Id('zone'),
          host: Type.String({ minLength: 1, maxLength: 253 }),
          port: Port,
          protocol: ProtocolSchema,
          login: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
          credential: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 })),
          credentialKind: Type.Optional(CredentialKind),
          hostKey: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 })),
          forwardPorts: Type.Optional(Type.Array(Port, { maxItems: 64, uniqueItems: true })),
          description: Type.Optional(Type.String({ maxLength: 2000 })),
        }),
        response: { 201: AssetSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      return reply
        .status(201)
        .send(assetView(await createAsset(ctx, principal, request.body), principal));
    },
  );

  app.get(
    '/api/v1/assets',
    {
      onRequest: signedIn,
      schema: {
        tags: ['assets'],
        querystring: strictObject({ zoneId: Type.Optional(Id('zone')) }),
        response: { 200: Type.Object({ assets: Type.Array(AssetSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return {
        assets: (await listAssets(ctx.pool, { zoneId: request.query.zoneId })).map((a) =>
          assetView(a, principal),
        ),
      };
    },
  );

  app.get(
    '/api/v1/assets/:id',
    {
      onRequest: signedIn,
      schema: {
        tags: ['assets'],
        params: IdParams('asset'),
        response: { 200: AssetSchema, ...errorResponses },
      },
    },
    async (request) => assetView(await getAsset(ctx.pool, request.params.id), principalOf(request)),
  );

  app.patch(
    '/api/v1/assets/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['assets'],
        summary: 'Change an asset (admin); a credential set here replaces the vaulted one',
        params: IdParams('asset'),
        body: strictObject({
          host: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
          port: Type.Optional(Port),
          protocol: Type.Optional(ProtocolSchema),
          login: Type.Optional(
            Type.Union([Type.String({ minLength: 1, maxLength: 100 }), Type.Null()]),
          ),
          credential: Type.Optional(
            Type.Union([Type.String({ minLength: 1, maxLength: 16384 }), Type.Null()]),
          ),
          credentialKind: Type.Optional(CredentialKind),
          hostKey: Type.Optional(
            Type.Union([Type.String({ minLength: 1, maxLength: 16384 }), Type.Null()]),
          ),
          forwardPorts: Type.Optional(Type.Array(Port, { maxItems: 64, uniqueItems: true })),
          description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
        }),
        response: { 200: AssetSchema, ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return assetView(
        await updateAsset(ctx, principal, request.params.id, request.body),
        principal,
      );
    },
  );
}
