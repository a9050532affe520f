import { AppError, GRANT_STATUSES, grantStatusAt } from '@airlock/domain';
import { Type } from 'typebox';
import type { BrokerContext } from '../../context.js';
import { visibilityOf } from '../../visibility.js';
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
import { CapabilitySchema } from '../zones/schemas.js';
import { findGrants, type GrantRecord } from './repository.js';
import { revokeGrant } from './service.js';

const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
const GrantStatusSchema = literalUnion(GRANT_STATUSES);

const GrantSchema = Type.Object({
  id: Id('grant'),
  requestId: Id('accessRequest'),
  user: Type.Object({ id: Id('user'), username: Type.String() }),
  asset: Type.Object({ id: Id('asset'), name: Type.String() }),
  zoneId: Id('zone'),
  status: GrantStatusSchema,
  notBefore: Timestamp,
  notAfter: Timestamp,
  capabilities: Type.Array(CapabilitySchema),
  createdAt: Timestamp,
  revokedAt: NullableTimestamp,
  revokedBy: Type.Union([Id('user'), Type.Null()]),
  revokeReason: NullableString,
});

export function grantView(g: GrantRecord, now: Date) {
  return {
    id: g.id,
    requestId: g.requestId,
    user: { id: g.userId, username: g.username },
    asset: { id: g.assetId, name: g.assetName },
    zoneId: g.zoneId,
    // Status follows from the clock, not from whether a job has run yet.
    status: grantStatusAt(g, now),
    notBefore: g.notBefore.toISOString(),
    notAfter: g.notAfter.toISOString(),
    capabilities: [...g.capabilities],
    createdAt: g.createdAt.toISOString(),
    revokedAt: g.revokedAt?.toISOString() ?? null,
    revokedBy: g.revokedBy,
    revokeReason: g.revokeReason,
  };
}

export function grantRoutes(app: App, ctx: BrokerContext): void {
  const signedIn = authenticate(ctx);

  app.get(
    '/api/v1/grants',
    {
      onRequest: signedIn,
      schema: {
        tags: ['grants'],
        summary:
          'Grants visible to the caller: vendors their own, approvers their zones’, admins and auditors all',
        querystring: strictObject({
          status: Type.Optional(GrantStatusSchema),
          userId: Type.Optional(Id('user')),
          assetId: Type.Optional(Id('asset')),
        }),
        response: { 200: Type.Object({ grants: Type.Array(GrantSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const visibility = await visibilityOf(ctx, principal);
      const now = ctx.clock.now();
      const grants = await findGrants(ctx.pool, {
        userId: request.query.userId,
        assetId: request.query.assetId,
        activeAt: request.query.status === 'active' ? now : undefined,
        visibleTo: visibility,
      });
      const views = grants.map((g) => grantView(g, now));
      return {
        grants:
          request.query.status === undefined
            ? views
            : views.filter((g) => g.status === request.query.status),
      };
    },
  );

  app.get(
    '/api/v1/grants/:id',
    {
      onRequest: signedIn,
      schema: {
        tags: ['grants'],
        params: IdParams('grant'),
        response: { 200: GrantSchema, ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const visibility = await visibilityOf(ctx, principal);
      const [grant] = await findGrants(ctx.pool, {
        ids: [request.params.id],
        visibleTo: visibility,
      });
      if (grant === undefined) throw new AppError('grant.not_found', { id: request.params.id });
      return grantView(grant, ctx.clock.now());
    },
  );

  app.post(
    '/api/v1/grants/:id/revoke',
    {
      onRequest: authenticate(ctx, { roles: ['admin', 'approver'] }),
      schema: {
        tags: ['grants'],
        summary: 'Revoke a grant (admin, or approver of its zone); live sessions under it end',
        params: IdParams('grant'),
        body: strictObject({ reason: Type.String({ minLength: 1, maxLength: 2000 }) }),
        response: { 200: GrantSchema, ...errorResponses },
      },
    },
    async (request) =>
      grantView(
        await revokeGrant(ctx, principalOf(request), request.params.id, request.body.reason),
        ctx.clock.now(),
      ),
  );
}
