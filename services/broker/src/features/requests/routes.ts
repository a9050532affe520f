import { REQUEST_STATUSES } from '@airlock/domain';
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
  optionalDate,
} from '../../http/schemas.js';
import { CapabilitySchema } from '../zones/schemas.js';
import { findRequests, type AccessRequestRecord } from './repository.js';
import {
  approveRequest,
  cancelRequest,
  denyRequest,
  fileRequest,
  getVisibleRequest,
} from './service.js';
import { verifyStepUp } from '../auth/service.js';

/** Step-up: a current one-time code; required when the decision comes with the console's cookie. */
const StepUpCode = Type.Optional(Type.String({ pattern: '^[0-9]{6,8}$' }));

const StatusSchema = literalUnion(REQUEST_STATUSES);
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

const RequestSchema = Type.Object({
  id: Id('accessRequest'),
  requester: Type.Object({ id: Id('user'), username: Type.String(), organization: NullableString }),
  status: StatusSchema,
  startsAt: NullableTimestamp,
  endsAt: NullableTimestamp,
  durationMinutes: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.String(),
  ticket: NullableString,
  capabilities: Type.Array(CapabilitySchema),
  assets: Type.Array(Type.Object({ id: Id('asset'), name: Type.String(), zoneId: Id('zone') })),
  zones: Type.Array(
    Type.Object({
      zoneId: Id('zone'),
      name: Type.String(),
      requiredApprovals: Type.Integer(),
      approvals: Type.Integer(),
    }),
  ),
  approvals: Type.Array(
    Type.Object({
      approverId: Id('user'),
      approver: Type.String(),
      zoneId: Id('zone'),
      decision: Type.String(),
      comment: NullableString,
      notBefore: NullableTimestamp,
      notAfter: NullableTimestamp,
      decidedAt: Timestamp,
    }),
  ),
  grantIds: Type.Array(Id('grant')),
  createdAt: Timestamp,
  expiresAt: Timestamp,
  decidedAt: NullableTimestamp,
  decisionReason: NullableString,
});

function requestView(r: AccessRequestRecord) {
  return {
    id: r.id,
    requester: {
      id: r.requesterId,
      username: r.requesterUsername,
      organization: r.requesterOrganization,
    },
    status: r.status,
    startsAt: r.window.kind === 'fixed' ? r.window.startsAt.toISOString() : null,
    endsAt: r.window.kind === 'fixed' ? r.window.endsAt.toISOString() : null,
    durationMinutes: r.window.kind === 'duration' ? r.window.minutes : null,
    reason: r.reason,
    ticket: r.ticket,
    capabilities: [...r.capabilities],
    assets: r.assets.map((a) => ({ ...a })),
    zones: r.zones.map((z) => ({
      zoneId: z.zoneId,
      name: z.zoneName,
      requiredApprovals: z.requiredApprovals,
      approvals: new Set(
        r.approvals
          .filter((a) => a.zoneId === z.zoneId && a.decision === 'approve')
          .map((a) => a.approverId),
      ).size,
    })),
    approvals: r.approvals.map((a) => ({
      approverId: a.approverId,
      approver: a.approverUsername,
      zoneId: a.zoneId,
      decision: a.decision,
      comment: a.comment,
      notBefore: a.notBefore?.toISOString() ?? null,
      notAfter: a.notAfter?.toISOString() ?? null,
      decidedAt: a.decidedAt.toISOString(),
    })),
    grantIds: [...r.grantIds],
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
    decidedAt: r.decidedAt?.toISOString() ?? null,
    decisionReason: r.decisionReason,
  };
}

export function requestRoutes(app: App, ctx: BrokerContext): void {
  const approver = authenticate(ctx, { roles: ['approver'] });
  const signedIn = authenticate(ctx);

  app.post(
    '/api/v1/requests',
    {
      onRequest: authenticate(ctx, { roles: ['vendor'] }),
      schema: {
        tags: ['requests'],
        summary: 'Request access to assets for a window (vendor)',
        description:
          'Give startsAt/endsAt (startsAt defaults to now) or durationMinutes, which starts when the last approval arrives.',
        body: strictObject({
          assetIds: Type.Array(Id('asset'), { minItems: 1, maxItems: 50, uniqueItems: true }),
          startsAt: Type.Optional(Timestamp),
          endsAt: Type.Optional(Timestamp),
          durationMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 60 })),
          reason: Type.String({ minLength: 1, maxLength: 2000 }),
          ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          capabilities: Type.Optional(
            Type.Array(CapabilitySchema, { minItems: 1, uniqueItems: true }),
          ),
        }),
        response: { 201: RequestSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const created = await fileRequest(ctx, principalOf(request), {
        assetIds: body.assetIds,
        startsAt: optionalDate(body.startsAt),
        endsAt: optionalDate(body.endsAt),
        durationMinutes: body.durationMinutes,
        reason: body.reason,
        ticket: body.ticket,
        capabilities: body.capabilities,
      });
      return reply.status(201).send(requestView(created));
    },
  );

  app.get(
    '/api/v1/requests',
    {
      onRequest: signedIn,
      schema: {
        tags: ['requests'],
        summary:
          'Requests visible to the caller: vendors their own, approvers their zones’, admins and auditors all',
        querystring: strictObject({
          status: Type.Optional(StatusSchema),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
        }),
        response: { 200: Type.Object({ requests: Type.Array(RequestSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const requests = await findRequests(ctx.pool, {
        status: request.query.status,
        visibleTo: await visibilityOf(ctx, principal),
        limit: request.query.limit ?? 100,
      });
      return { requests: requests.map(requestView) };
    },
  );

  app.get(
    '/api/v1/requests/:id',
    {
      onRequest: signedIn,
      schema: {
        tags: ['requests'],
        params: IdParams('accessRequest'),
        response: { 200: RequestSchema, ...errorResponses },
      },
    },
    async (request) =>
      requestView(await getVisibleRequest(ctx, principalOf(request), request.params.id)),
  );

  app.post(
    '/api/v1/requests/:id/approve',
    {
      onRequest: approver,
      schema: {
        tags: ['requests'],
        summary: 'Approve (approver of a zone of the request); optionally narrow the window',
        params: IdParams('accessRequest'),
        body: strictObject({
          comment: Type.Optional(Type.String({ maxLength: 2000 })),
          notBefore: Type.Optional(Timestamp),
          notAfter: Type.Optional(Timestamp),
          totp: StepUpCode,
        }),
        response: { 200: RequestSchema, ...errorResponses },
      },
    },
    async (request) => {
      const body = request.body;
      await verifyStepUp(ctx, principalOf(request), body.totp, 'approve');
      return requestView(
        await approveRequest(ctx, principalOf(request), request.params.id, {
          comment: body.comment,
          notBefore: optionalDate(body.notBefore),
          notAfter: optionalDate(body.notAfter),
        }),
      );
    },
  );

  app.post(
    '/api/v1/requests/:id/deny',
    {
      onRequest: approver,
      schema: {
        tags: ['requests'],
        summary: 'Deny (approver of a zone of the request); any deny denies',
        params: IdParams('accessRequest'),
        body: strictObject({
          reason: Type.String({ minLength: 1, maxLength: 2000 }),
          totp: StepUpCode,
        }),
        response: { 200: RequestSchema, ...errorResponses },
      },
    },
    async (request) => {
      await verifyStepUp(ctx, principalOf(request), request.body.totp, 'deny');
      return requestView(
        await denyRequest(ctx, principalOf(request), request.params.id, request.body.reason),
      );
    },
  );

  app.post(
    '/api/v1/requests/:id/cancel',
    {
      onRequest: authenticate(ctx, { roles: ['vendor'] }),
      schema: {
        tags: ['requests'],
        summary: 'Withdraw one’s own pending request',
        params: IdParams('accessRequest'),
        response: { 200: RequestSchema, ...errorResponses },
      },
    },
    async (request) =>
      requestView(await cancelRequest(ctx, principalOf(request), request.params.id)),
  );
}
