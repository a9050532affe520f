import { createHash, randomBytes } from 'node:crypto';
import { withTransaction } from '@airlock/db';
import { AppError, newId } from '@airlock/domain';
import { brokerAudience, ENROLL_PATH, publicKeyFromPem, publicKeyToPem } from '@airlock/tunnel';
import { Type } from 'typebox';
import { audit, auditAlone } from '../../audit.js';
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
} from '../../http/schemas.js';
import { actorOf } from '../../principal.js';
import { getZone } from '../zones/repository.js';

/** How long a one-time enrollment token stays usable. */
const ENROLLMENT_TTL_MS = 60 * 60_000;

const ConnectorSchema = Type.Object({
  id: Id('connector'),
  zoneId: Id('zone'),
  name: Type.String(),
  status: Type.String(),
  version: NullableString,
  address: NullableString,
  enrolledAt: Type.Union([Timestamp, Type.Null()]),
  lastSeenAt: Type.Union([Timestamp, Type.Null()]),
  createdAt: Timestamp,
});

interface ConnectorRow {
  id: string;
  zone_id: string;
  name: string;
  status: string;
  version: string | null;
  address: string | null;
  enrolled_at: Date | null;
  last_seen_at: Date | null;
  created_at: Date;
}

const view = (r: ConnectorRow) => ({
  id: r.id,
  zoneId: r.zone_id,
  name: r.name,
  status: r.status,
  version: r.version,
  address: r.address,
  enrolledAt: r.enrolled_at?.toISOString() ?? null,
  lastSeenAt: r.last_seen_at?.toISOString() ?? null,
  createdAt: r.created_at.toISOString(),
});

export function hashEnrollmentToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** SHA-256 of the SPKI DER: how audit events name a connector key. */
function keyFingerprint(pem: string): string {
  const der = publicKeyFromPem(pem).export({ format: 'der', type: 'spki' });
  return `SHA256:${createHash('sha256').update(der).digest('base64url')}`;
}

interface EnrollmentRow {
  id: string;
  zone_id: string;
  name: string;
  enrollment_expires_at: Date | null;
  enrolled_at: Date | null;
  status: string;
}

export function connectorRoutes(app: App, ctx: BrokerContext): void {
  /**
   * Enrolment: the connector presents its one-time token and the public half
   * of the Ed25519 key it generated; from then on it proves itself with
   * assertions signed by that key. The token is burned in the same
   * transaction (enrolled_at set: its hash then only recognises a reuse).
   * Every failure looks the same from outside and is audited with its reason.
   */
  app.post(
    ENROLL_PATH,
    {
      schema: {
        tags: ['connectors'],
        summary: 'Enrol a connector with its one-time token and its Ed25519 public key (no bearer)',
        security: [],
        body: strictObject({
          token: Type.String({ minLength: 1, maxLength: 200 }),
          publicKey: Type.String({ minLength: 1, maxLength: 1000 }),
          version: Type.String({ pattern: '^[\\w.+-]{1,40}$' }),
        }),
        response: {
          200: Type.Object({
            connectorId: Id('connector'),
            zoneId: Id('zone'),
            name: Type.String(),
            audience: Type.String(),
            brokerPublicKey: Type.String(),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { token, publicKey, version } = request.body;
      let fingerprint: string;
      try {
        fingerprint = keyFingerprint(publicKey);
      } catch {
        throw new AppError('connector.public_key_invalid');
      }
      const now = ctx.clock.now();
      type Outcome = { row: EnrollmentRow } | { reason: string; connectorId: string | null };
      const refusal = await withTransaction(ctx.pool, async (client): Promise<Outcome> => {
        const { rows } = await client.query<EnrollmentRow>(
          `select id, zone_id, name, enrollment_expires_at, enrolled_at, status from connectors
            where enrollment_token_hash = $1 for update`,
          [hashEnrollmentToken(token)],
        );
        const row = rows[0];
        if (row === undefined) return { reason: 'unknown_token', connectorId: null };
        if (row.enrolled_at !== null) return { reason: 'already_used', connectorId: row.id };
        if (row.status === 'disabled') return { reason: 'disabled', connectorId: row.id };
        if (row.enrollment_expires_at === null || row.enrollment_expires_at <= now)
          return { reason: 'expired', connectorId: row.id };
        await client.query(
          `update connectors set public_key = $2, enrolled_at = $3, version = $4, status = 'offline'
            where id = $1`,
          [row.id, publicKey, now, version],
        );
        await audit(client, ctx, {
          type: 'connector.enrolled',
          actor: { kind: 'connector', id: row.id, ip: request.ip },
          subjectId: row.id,
          data: { name: row.name, zoneId: row.zone_id, version, publicKey: fingerprint },
        });
        return { row };
      });
      if ('reason' in refusal) {
        await auditAlone(ctx, {
          type: 'connector.enrollment_refused',
          actor:
            refusal.connectorId === null
              ? { kind: 'anonymous', ip: request.ip }
              : { kind: 'connector', id: refusal.connectorId, ip: request.ip },
          subjectId: refusal.connectorId,
          outcome: 'failure',
          data: { reason: refusal.reason, publicKey: fingerprint, version },
        });
        throw new AppError('connector.enrollment_invalid');
      }
      const { row } = refusal;
      return {
        connectorId: row.id,
        zoneId: row.zone_id,
        name: row.name,
        audience: await brokerAudience(ctx.connectorKeys.publicKey),
        brokerPublicKey: publicKeyToPem(ctx.connectorKeys.publicKey),
      };
    },
  );

  app.post(
    '/api/v1/connectors',
    {
      onRequest: authenticate(ctx, { roles: ['admin'] }),
      schema: {
        tags: ['connectors'],
        summary:
          'Register a connector for a zone (admin); returns its one-time enrollment token once',
        body: strictObject({
          name: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' }),
          zoneId: Id('zone'),
        }),
        response: {
          201: Type.Object({
            id: Id('connector'),
            name: Type.String(),
            zoneId: Id('zone'),
            enrollmentToken: Type.String(),
            enrollmentExpiresAt: Timestamp,
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { name, zoneId } = request.body;
      const id = newId('connector');
      // Only the hash is stored: a database reader cannot enrol a rogue connector.
      const enrollmentToken = `alenr_${randomBytes(32).toString('base64url')}`;
      const now = ctx.clock.now();
      const expiresAt = new Date(now.getTime() + ENROLLMENT_TTL_MS);
      await withTransaction(ctx.pool, async (client) => {
        await getZone(client, zoneId);
        try {
          await client.query(
            `insert into connectors (id, zone_id, name, enrollment_token_hash, enrollment_expires_at, created_at)
             values ($1, $2, $3, $4, $5, $6)`,
            [id, zoneId, name, hashEnrollmentToken(enrollmentToken), expiresAt, now],
          );
        } catch (err) {
          if ((err as { constraint?: string }).constraint === 'connectors_zone_name_uq')
            throw new AppError('connector.name_taken', { name });
          throw err;
        }
        await audit(client, ctx, {
          type: 'connector.created',
          actor: actorOf(principal),
          subjectId: id,
          data: { name, zoneId, enrollmentExpiresAt: expiresAt.toISOString() },
        });
      });
      return reply
        .status(201)
        .send({ id, name, zoneId, enrollmentToken, enrollmentExpiresAt: expiresAt.toISOString() });
    },
  );

  app.get(
    '/api/v1/connectors',
    {
      onRequest: authenticate(ctx, { roles: ['admin', 'auditor', 'approver'] }),
      schema: {
        tags: ['connectors'],
        querystring: strictObject({ zoneId: Type.Optional(Id('zone')) }),
        response: {
          200: Type.Object({ connectors: Type.Array(ConnectorSchema) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { rows } = await ctx.pool.query<ConnectorRow>(
        'select * from connectors where ($1::text is null or zone_id = $1) order by zone_id, name',
        [request.query.zoneId ?? null],
      );
      return { connectors: rows.map(view) };
    },
  );

  /**
   * Takes a connector out of service for good (a stolen or retired host): its
   * assertions are refused from now on, no stream is offered to it, and every
   * replica drops its links (and the sessions on them) within a few seconds.
   * Enrol a new connector to replace it.
   */
  app.post(
    '/api/v1/connectors/:id/disable',
    {
      onRequest: authenticate(ctx, { roles: ['admin'] }),
      schema: {
        tags: ['connectors'],
        summary: 'Disable a connector (admin): its identity is refused from now on',
        params: IdParams('connector'),
        body: strictObject({ reason: Type.String({ minLength: 1, maxLength: 2000 }) }),
        response: { 200: ConnectorSchema, ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { id } = request.params;
      return withTransaction(ctx.pool, async (client) => {
        const { rows } = await client.query<ConnectorRow>(
          `update connectors set status = 'disabled' where id = $1 returning *`,
          [id],
        );
        const row = rows[0];
        if (row === undefined) throw new AppError('connector.not_found', { id });
        await audit(client, ctx, {
          type: 'connector.disabled',
          actor: actorOf(principal),
          subjectId: id,
          data: { name: row.name, zoneId: row.zone_id, reason: request.body.reason },
        });
        return view(row);
      });
    },
  );
}
