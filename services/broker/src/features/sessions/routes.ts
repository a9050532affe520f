import { Readable } from 'node:stream';
import { withTransaction } from '@airlock/db';
import { AppError } from '@airlock/domain';
import {
  asciicastLines,
  decodeFrames,
  streamSessionChunks,
  verifySessionRecording,
} from '@airlock/recording';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import { requireZoneControl, visibilityOf } from '../../visibility.js';
import { sendSessionSignal } from '../../gateway/signals.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf } from '../../http/authenticate.js';
import {
  errorResponses,
  Id,
  IdParams,
  NullableString,
  strictObject,
  Timestamp,
  optionalDate,
} from '../../http/schemas.js';
import { actorOf } from '../../principal.js';
import { buildSessionExport } from './export.js';
import {
  findCommands,
  findSessions,
  getSession,
  type CommandRecord,
  type SessionRecord,
} from './repository.js';

const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

const SessionSchema = Type.Object({
  id: Id('session'),
  grantId: Id('grant'),
  user: Type.Object({ id: Id('user'), username: Type.String(), organization: NullableString }),
  asset: Type.Object({ id: Id('asset'), name: Type.String() }),
  zoneId: Id('zone'),
  /** The zone connector that carried the session; null when the asset was dialled directly. */
  connectorId: Type.Union([Id('connector'), Type.Null()]),
  protocol: Type.String(),
  clientAddress: NullableString,
  clientVersion: NullableString,
  startedAt: Timestamp,
  endedAt: NullableTimestamp,
  endReason: NullableString,
  endDetail: NullableString,
  live: Type.Boolean(),
  bytesFromClient: Type.Integer(),
  bytesToClient: Type.Integer(),
  recordingChunks: Type.Integer(),
});

const CommandSchema = Type.Object({
  id: Type.String(),
  sessionId: Id('session'),
  user: Type.Object({ id: Id('user'), username: Type.String() }),
  asset: Type.Object({ id: Id('asset'), name: Type.String() }),
  kind: Type.String(),
  command: Type.String(),
  occurredAt: Timestamp,
  offsetMs: Type.Integer(),
  outcome: Type.String(),
  rule: NullableString,
  auditSeq: Type.Integer(),
});

function sessionView(s: SessionRecord) {
  return {
    id: s.id,
    grantId: s.grantId,
    user: { id: s.userId, username: s.username, organization: s.organization },
    asset: { id: s.assetId, name: s.assetName },
    zoneId: s.zoneId,
    connectorId: s.connectorId,
    protocol: s.protocol,
    clientAddress: s.clientAddress,
    clientVersion: s.clientVersion,
    startedAt: s.startedAt.toISOString(),
    endedAt: s.endedAt?.toISOString() ?? null,
    endReason: s.endReason,
    endDetail: s.endDetail,
    live: s.endedAt === null,
    bytesFromClient: s.bytesFromClient,
    bytesToClient: s.bytesToClient,
    recordingChunks: s.recordingChunks,
  };
}

function commandView(c: CommandRecord) {
  return {
    id: c.id,
    sessionId: c.sessionId,
    user: { id: c.userId, username: c.username },
    asset: { id: c.assetId, name: c.assetName },
    kind: c.kind,
    command: c.command,
    occurredAt: c.occurredAt.toISOString(),
    offsetMs: c.offsetMs,
    outcome: c.outcome,
    rule: c.rule,
    auditSeq: c.auditSeq,
  };
}

/** The session's terminal as asciicast v2 lines, sized by its first recorded resize. */
export async function* sessionAsciicast(
  ctx: BrokerContext,
  session: SessionRecord,
  options: { channel: number; includeInput: boolean },
): AsyncGenerator<string> {
  const { rows } = await ctx.pool.query<{ channel: number; data: Buffer }>(
    `select channel, data from session_chunks where session_id = $1 and kind = 'r' order by seq limit 1`,
    [session.id],
  );
  const firstResize = rows[0];
  let width = 80;
  let height = 24;
  if (firstResize !== undefined) {
    const match = /(\d+)x(\d+)/.exec(
      decodeFrames(firstResize.data, 0)[0]?.data.toString('utf8') ?? '',
    );
    if (match !== null) {
      width = Number(match[1]);
      height = Number(match[2]);
    }
  }
  yield* asciicastLines(streamSessionChunks(ctx.pool, session.id), {
    channel: options.channel,
    includeInput: options.includeInput,
    header: {
      width,
      height,
      startedAt: session.startedAt,
      title: `${session.username}@${session.assetName} ${session.id}`,
      term: 'xterm-256color',
    },
  });
}

export function sessionRoutes(app: App, ctx: BrokerContext): void {
  const signedIn = authenticate(ctx);

  app.get(
    '/api/v1/sessions',
    {
      onRequest: signedIn,
      schema: {
        tags: ['sessions'],
        summary: 'Sessions visible to the caller, newest first',
        querystring: strictObject({
          live: Type.Optional(Type.Boolean()),
          userId: Type.Optional(Id('user')),
          assetId: Type.Optional(Id('asset')),
          zoneId: Type.Optional(Id('zone')),
          endReason: Type.Optional(Type.String({ maxLength: 40 })),
          from: Type.Optional(Timestamp),
          to: Type.Optional(Timestamp),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
        }),
        response: { 200: Type.Object({ sessions: Type.Array(SessionSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const sessions = await findSessions(ctx.pool, {
        live: q.live,
        userId: q.userId,
        assetId: q.assetId,
        zoneId: q.zoneId,
        endReason: q.endReason,
        from: optionalDate(q.from),
        to: optionalDate(q.to),
        visibleTo: await visibilityOf(ctx, principalOf(request)),
        limit: q.limit ?? 100,
      });
      return { sessions: sessions.map(sessionView) };
    },
  );

  app.get(
    '/api/v1/sessions/:id',
    {
      onRequest: signedIn,
      schema: {
        tags: ['sessions'],
        params: IdParams('session'),
        response: { 200: SessionSchema, ...errorResponses },
      },
    },
    async (request) =>
      sessionView(
        await getSession(
          ctx.pool,
          request.params.id,
          await visibilityOf(ctx, principalOf(request)),
        ),
      ),
  );

  app.get(
    '/api/v1/sessions/:id/commands',
    {
      onRequest: signedIn,
      schema: {
        tags: ['sessions'],
        params: IdParams('session'),
        response: { 200: Type.Object({ commands: Type.Array(CommandSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const v = await visibilityOf(ctx, principalOf(request));
      await getSession(ctx.pool, request.params.id, v);
      return {
        commands: (
          await findCommands(ctx.pool, {
            sessionId: request.params.id,
            visibleTo: v,
            limit: 10_000,
          })
        ).map(commandView),
      };
    },
  );

  app.get(
    '/api/v1/sessions/:id/recording',
    {
      onRequest: signedIn,
      schema: {
        tags: ['sessions'],
        summary: 'The session’s terminal as asciicast v2 (replay with `asciinema play`)',
        params: IdParams('session'),
        querystring: strictObject({
          channel: Type.Optional(Type.Integer({ minimum: 0 })),
          input: Type.Optional(Type.Boolean()),
        }),
      },
    },
    async (request, reply) => {
      const session = await getSession(
        ctx.pool,
        request.params.id,
        await visibilityOf(ctx, principalOf(request)),
      );
      const lines = sessionAsciicast(ctx, session, {
        channel: request.query.channel ?? 0,
        includeInput: request.query.input ?? false,
      });
      return reply
        .type('application/x-asciicast')
        .header('content-disposition', `attachment; filename="${session.id}.cast"`)
        .send(Readable.from(lines));
    },
  );

  app.get(
    '/api/v1/sessions/:id/recording/verify',
    {
      onRequest: authenticate(ctx, { roles: ['auditor', 'admin'] }),
      schema: {
        tags: ['sessions'],
        summary: 'Recompute the recording’s hash chain and compare with the sealed head',
        params: IdParams('session'),
      },
    },
    async (request) => {
      const session = await getSession(ctx.pool, request.params.id);
      return verifySessionRecording(
        ctx.pool,
        session.id,
        session.endedAt === null
          ? undefined
          : { chunks: session.recordingChunks, head: session.recordingHead },
      );
    },
  );

  app.get(
    '/api/v1/sessions/:id/export',
    {
      onRequest: authenticate(ctx, { roles: ['auditor', 'admin'] }),
      schema: {
        tags: ['sessions'],
        summary:
          'An ended session as one signed JSON file (recording, asciicast, commands, audit events) that `pnpm airlock verify-export` checks offline',
        params: IdParams('session'),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const session = await getSession(ctx.pool, request.params.id);
      const bundle = await buildSessionExport(ctx, session, {
        sessionJson: sessionView(session),
        asciicast: sessionAsciicast(ctx, session, { channel: 0, includeInput: false }),
      });
      await withTransaction(ctx.pool, (client) =>
        audit(client, ctx, {
          type: 'session.exported',
          actor: actorOf(principal),
          subjectId: session.id,
          data: {
            recordingHead: bundle.statement.recordingHead,
            auditEvents: bundle.auditEvents.length,
            commands: bundle.commands.length,
          },
        }),
      );
      return reply
        .type('application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="${session.id}.airlock-export.json"`)
        .send(JSON.stringify(bundle, null, 2));
    },
  );

  app.post(
    '/api/v1/sessions/:id/terminate',
    {
      onRequest: authenticate(ctx, { roles: ['admin', 'approver'] }),
      schema: {
        tags: ['sessions'],
        summary:
          'End a live session within a second, on whichever replica carries it (admin, or approver of its zone)',
        params: IdParams('session'),
        body: strictObject({ reason: Type.String({ minLength: 1, maxLength: 2000 }) }),
        response: {
          202: Type.Object({ sessionId: Id('session'), status: Type.Literal('terminating') }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const session = await getSession(ctx.pool, request.params.id);
      await requireZoneControl(ctx.pool, principal, session.zoneId);
      if (session.endedAt !== null) throw new AppError('session.already_ended');
      await withTransaction(ctx.pool, async (client) => {
        await audit(client, ctx, {
          type: 'session.terminate_requested',
          actor: actorOf(principal),
          subjectId: session.id,
          data: { reason: request.body.reason },
        });
        await sendSessionSignal(client, {
          kind: 'terminate',
          sessionId: session.id,
          detail: request.body.reason,
        });
      });
      return reply.status(202).send({ sessionId: session.id, status: 'terminating' as const });
    },
  );

  app.get(
    '/api/v1/commands',
    {
      onRequest: signedIn,
      schema: {
        tags: ['sessions'],
        summary: 'Search commands across every session the caller may see',
        querystring: strictObject({
          q: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
          assetId: Type.Optional(Id('asset')),
          userId: Type.Optional(Id('user')),
          from: Type.Optional(Timestamp),
          to: Type.Optional(Timestamp),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
        response: { 200: Type.Object({ commands: Type.Array(CommandSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const commands = await findCommands(ctx.pool, {
        q: q.q,
        assetId: q.assetId,
        userId: q.userId,
        from: optionalDate(q.from),
        to: optionalDate(q.to),
        visibleTo: await visibilityOf(ctx, principalOf(request)),
        limit: q.limit ?? 200,
      });
      return { commands: commands.map(commandView) };
    },
  );
}
