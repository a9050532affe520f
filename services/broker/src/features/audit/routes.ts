import {
  listAuditEvents,
  streamAuditEvents,
  verifyAuditTrail,
  type AuditEventRecord,
} from '@airlock/audit';
import { Readable } from 'node:stream';
import { Type } from 'typebox';
import { auditAlone } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf } from '../../http/authenticate.js';
import { errorResponses, strictObject, Timestamp } from '../../http/schemas.js';
import { actorOf } from '../../principal.js';

export function auditEventView(e: AuditEventRecord) {
  return {
    seq: e.seq,
    id: e.id,
    occurredAt: e.occurredAt.toISOString(),
    type: e.type,
    code: e.code,
    actor: { kind: e.actorKind, id: e.actorId, ip: e.sourceIp },
    subjectId: e.subjectId,
    outcome: e.outcome,
    data: e.data,
    prevHash: e.prevHash,
    hash: e.hash,
  };
}

const VerifySchema = Type.Object({
  ok: Type.Boolean(),
  events: Type.Integer(),
  head: Type.Union([Type.Object({ seq: Type.Integer(), hash: Type.String() }), Type.Null()]),
  checkpoint: Type.Union([
    Type.Object({ seq: Type.Integer(), createdAt: Type.String() }),
    Type.Null(),
  ]),
  firstBad: Type.Optional(
    Type.Object({
      seq: Type.Integer(),
      id: Type.Union([Type.String(), Type.Null()]),
      reason: Type.String(),
      message: Type.String(),
    }),
  ),
});

export function auditRoutes(app: App, ctx: BrokerContext): void {
  const readers = authenticate(ctx, { roles: ['auditor', 'admin'] });

  app.get(
    '/api/v1/audit',
    {
      onRequest: readers,
      schema: {
        tags: ['audit'],
        summary: 'Audit events, filtered (auditor, admin)',
        querystring: strictObject({
          type: Type.Optional(Type.String({ maxLength: 100 })),
          actorId: Type.Optional(Type.String({ maxLength: 100 })),
          subjectId: Type.Optional(Type.String({ maxLength: 100 })),
          from: Type.Optional(Timestamp),
          to: Type.Optional(Timestamp),
          afterSeq: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
        }),
      },
    },
    async (request) => {
      const q = request.query;
      const events = await listAuditEvents(ctx.pool, {
        ...(q.type === undefined ? {} : { type: q.type }),
        ...(q.actorId === undefined ? {} : { actorId: q.actorId }),
        ...(q.subjectId === undefined ? {} : { subjectId: q.subjectId }),
        ...(q.from === undefined ? {} : { from: new Date(q.from) }),
        ...(q.to === undefined ? {} : { to: new Date(q.to) }),
        ...(q.afterSeq === undefined ? {} : { afterSeq: q.afterSeq }),
        limit: q.limit ?? 100,
        order: q.order ?? 'asc',
      });
      return { events: events.map(auditEventView) };
    },
  );

  app.get(
    '/api/v1/audit/verify',
    {
      onRequest: readers,
      schema: {
        tags: ['audit'],
        summary:
          'Recompute the hash chain and check the signed checkpoints; names the first bad event',
        response: { 200: VerifySchema, ...errorResponses },
      },
    },
    async (request) => {
      const result = await verifyAuditTrail(ctx.pool, {
        checkpointPublicKey: ctx.auditKeys.publicKey,
      });
      await auditAlone(ctx, {
        type: 'audit.verified',
        actor: actorOf(principalOf(request)),
        outcome: result.ok ? 'success' : 'failure',
        data: {
          ok: result.ok,
          events: result.events,
          headSeq: result.head?.seq ?? null,
          firstBadSeq: result.firstBad?.seq ?? null,
        },
      });
      return result;
    },
  );

  app.get(
    '/api/v1/audit/export',
    {
      onRequest: readers,
      schema: {
        tags: ['audit'],
        summary: 'Every audit event as JSON lines, in order (auditor, admin)',
        querystring: strictObject({ fromSeq: Type.Optional(Type.Integer({ minimum: 1 })) }),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await auditAlone(ctx, {
        type: 'audit.exported',
        actor: actorOf(principal),
        data: { fromSeq: request.query.fromSeq ?? 1, via: 'api' },
      });
      async function* lines(): AsyncGenerator<string> {
        for await (const event of streamAuditEvents(ctx.pool, {
          fromSeq: request.query.fromSeq ?? 1,
        })) {
          yield `${JSON.stringify(auditEventView(event))}\n`;
        }
      }
      return reply.type('application/x-ndjson').send(Readable.from(lines()));
    },
  );
}
