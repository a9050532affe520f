import { createHash, randomBytes } from 'node:crypto';
import { withTransaction } from '@airlock/db';
import { AppError, newId } from '@airlock/domain';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';
import { authenticate, principalOf } from '../../http/authenticate.js';
import { errorResponses, Id, NullableString, strictObject, Timestamp } from '../../http/schemas.js';
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

export function connectorRoutes(app: App, ctx: BrokerContext): void {
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
}
