import { Type } from 'typebox';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf } from '../../http/authenticate.js';
import { errorResponses, Id, IdParams, strictObject } from '../../http/schemas.js';
import { getZone, listZones, type ZoneRecord } from './repository.js';
import { ZonePolicyInput, ZoneSchema } from './schemas.js';
import { createZone, setZoneApprovers, updateZone } from './service.js';

export function zoneView(z: ZoneRecord) {
  return {
    id: z.id,
    name: z.name,
    description: z.description,
    policy: {
      ...z.policy,
      allowedCapabilities: [...z.policy.allowedCapabilities],
      commandRules: [...z.policy.commandRules],
    },
    approverIds: [...z.approverIds],
    createdAt: z.createdAt.toISOString(),
    updatedAt: z.updatedAt.toISOString(),
  };
}

const ZoneName = Type.String({ minLength: 1, maxLength: 200 });

export function zoneRoutes(app: App, ctx: BrokerContext): void {
  const admin = authenticate(ctx, { roles: ['admin'] });
  // Every role may read zones: vendors see a zone's limits before they request.
  const signedIn = authenticate(ctx);

  app.post(
    '/api/v1/zones',
    {
      onRequest: admin,
      schema: {
        tags: ['zones'],
        summary: 'Create a zone with its policy (admin)',
        body: strictObject({
          name: ZoneName,
          description: Type.Optional(Type.String({ maxLength: 2000 })),
          policy: Type.Optional(ZonePolicyInput),
        }),
        response: { 201: ZoneSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(zoneView(await createZone(ctx, principalOf(request), request.body))),
  );

  app.get(
    '/api/v1/zones',
    {
      onRequest: signedIn,
      schema: {
        tags: ['zones'],
        response: { 200: Type.Object({ zones: Type.Array(ZoneSchema) }), ...errorResponses },
      },
    },
    async () => ({ zones: (await listZones(ctx.pool)).map(zoneView) }),
  );

  app.get(
    '/api/v1/zones/:id',
    {
      onRequest: signedIn,
      schema: {
        tags: ['zones'],
        params: IdParams('zone'),
        response: { 200: ZoneSchema, ...errorResponses },
      },
    },
    async (request) => zoneView(await getZone(ctx.pool, request.params.id)),
  );

  app.patch(
    '/api/v1/zones/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['zones'],
        summary:
          'Change a zone’s name, description or policy (admin); requests in flight keep their quorum',
        params: IdParams('zone'),
        body: strictObject({
          name: Type.Optional(ZoneName),
          description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
          policy: Type.Optional(ZonePolicyInput),
        }),
        response: { 200: ZoneSchema, ...errorResponses },
      },
    },
    async (request) =>
      zoneView(await updateZone(ctx, principalOf(request), request.params.id, request.body)),
  );

  app.put(
    '/api/v1/zones/:id/approvers',
    {
      onRequest: admin,
      schema: {
        tags: ['zones'],
        summary: 'Replace the approvers of a zone (admin); each must hold the approver role',
        params: IdParams('zone'),
        body: strictObject({
          userIds: Type.Array(Id('user'), { maxItems: 100, uniqueItems: true }),
        }),
        response: { 200: ZoneSchema, ...errorResponses },
      },
    },
    async (request) =>
      zoneView(
        await setZoneApprovers(ctx, principalOf(request), request.params.id, request.body.userIds),
      ),
  );
}
