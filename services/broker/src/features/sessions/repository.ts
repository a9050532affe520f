import type { Visibility } from '../../visibility.js';
import type { Queryable } from '@airlock/db';
import { AppError, type SessionEndReason } from '@airlock/domain';

/** Extra end reasons the gateway uses besides DESIGN's list. */
export type EndReason = SessionEndReason | 'idle_timeout' | 'asset_unreachable' | 'error';

export interface SessionRecord {
  readonly id: string;
  readonly grantId: string;
  readonly userId: string;
  readonly username: string;
  readonly organization: string | null;
  readonly assetId: string;
  readonly assetName: string;
  readonly zoneId: string;
  readonly connectorId: string | null;
  readonly protocol: 'ssh' | 'web';
  readonly clientAddress: string | null;
  readonly clientVersion: string | null;
  readonly brokerInstance: string;
  readonly startedAt: Date;
  readonly endedAt: Date | null;
  readonly endReason: EndReason | null;
  readonly endDetail: string | null;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly recordingChunks: number;
  readonly recordingHead: string | null;
}

interface SessionRow {
  id: string;
  grant_id: string;
  user_id: string;
  username: string;
  organization: string | null;
  asset_id: string;
  asset_name: string;
  zone_id: string;
  connector_id: string | null;
  protocol: 'ssh' | 'web';
  client_address: string | null;
  client_version: string | null;
  broker_instance: string;
  started_at: Date;
  ended_at: Date | null;
  end_reason: EndReason | null;
  end_detail: string | null;
  bytes_from_client: number;
  bytes_to_client: number;
  recording_chunks: number;
  recording_head: string | null;
}

const fromRow = (r: SessionRow): SessionRecord => ({
  id: r.id,
  grantId: r.grant_id,
  userId: r.user_id,
  username: r.username,
  organization: r.organization,
  assetId: r.asset_id,
  assetName: r.asset_name,
  zoneId: r.zone_id,
  connectorId: r.connector_id,
  protocol: r.protocol,
  clientAddress: r.client_address,
  clientVersion: r.client_version,
  brokerInstance: r.broker_instance,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  endReason: r.end_reason,
  endDetail: r.end_detail,
  bytesFromClient: r.bytes_from_client,
  bytesToClient: r.bytes_to_client,
  recordingChunks: r.recording_chunks,
  recordingHead: r.recording_head,
});

export async function insertSession(
  db: Queryable,
  s: {
    id: string;
    grantId: string;
    userId: string;
    assetId: string;
    zoneId: string;
    connectorId: string | null;
    protocol: 'ssh' | 'web';
    clientAddress: string | null;
    clientVersion: string | null;
    brokerInstance: string;
    startedAt: Date;
  },
): Promise<void> {
  await db.query(
    `insert into sessions (id, grant_id, user_id, asset_id, zone_id, connector_id, protocol, client_address, client_version,
                           broker_instance, started_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      s.id,
      s.grantId,
      s.userId,
      s.assetId,
      s.zoneId,
      s.connectorId,
      s.protocol,
      s.clientAddress,
      s.clientVersion,
      s.brokerInstance,
      s.startedAt,
    ],
  );
}

export async function endSessionRow(
  db: Queryable,
  id: string,
  e: {
    endedAt: Date;
    reason: EndReason;
    detail: string | null;
    bytesFromClient: number;
    bytesToClient: number;
    chunks: number;
    head: string | null;
  },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update sessions set ended_at = $2, end_reason = $3, end_detail = $4, bytes_from_client = $5, bytes_to_client = $6,
                         recording_chunks = $7, recording_head = $8
      where id = $1 and ended_at is null`,
    [id, e.endedAt, e.reason, e.detail, e.bytesFromClient, e.bytesToClient, e.chunks, e.head],
  );
  return rowCount === 1;
}

export interface SessionFilter {
  readonly ids?: readonly string[];
  readonly live?: boolean | undefined;
  readonly userId?: string | undefined;
  readonly assetId?: string | undefined;
  readonly zoneId?: string | undefined;
  readonly endReason?: string | undefined;
  readonly from?: Date | undefined;
  readonly to?: Date | undefined;
  readonly visibleTo?: Visibility | undefined;
  readonly limit?: number;
}

export async function findSessions(db: Queryable, f: SessionFilter): Promise<SessionRecord[]> {
  const { rows } = await db.query<SessionRow>(
    `select s.*, u.username, o.name as organization, a.name as asset_name
       from sessions s join users u on u.id = s.user_id left join organizations o on o.id = u.organization_id
       join assets a on a.id = s.asset_id
      where ($1::text[] is null or s.id = any ($1))
        and ($2::boolean is null or (s.ended_at is null) = $2)
        and ($3::text is null or s.user_id = $3)
        and ($4::text is null or s.asset_id = $4)
        and ($5::text is null or s.zone_id = $5)
        and ($6::text is null or s.end_reason = $6)
        and ($7::timestamptz is null or s.started_at >= $7)
        and ($8::timestamptz is null or s.started_at < $8)
        and ($9::boolean is false or s.user_id = $10 or s.zone_id = any ($11::text[]))
      order by s.started_at desc, s.id
      limit $12`,
    [
      f.ids === undefined ? null : [...f.ids],
      f.live ?? null,
      f.userId ?? null,
      f.assetId ?? null,
      f.zoneId ?? null,
      f.endReason ?? null,
      f.from ?? null,
      f.to ?? null,
      f.visibleTo !== undefined,
      f.visibleTo?.userId ?? null,
      f.visibleTo?.zoneIds ?? [],
      f.limit ?? 200,
    ],
  );
  return rows.map(fromRow);
}

export async function getSession(
  db: Queryable,
  id: string,
  visibleTo?: SessionFilter['visibleTo'],
): Promise<SessionRecord> {
  const [session] = await findSessions(db, { ids: [id], visibleTo });
  if (session === undefined) throw new AppError('session.not_found', { id });
  return session;
}

export type CommandKind = 'shell' | 'exec' | 'sftp' | 'scp' | 'forward' | 'modbus';
export type CommandOutcome = 'forwarded' | 'blocked' | 'alerted';

export interface CommandRecord {
  readonly id: string;
  readonly sessionId: string;
  readonly userId: string;
  readonly username: string;
  readonly assetId: string;
  readonly assetName: string;
  readonly kind: CommandKind;
  readonly command: string;
  readonly occurredAt: Date;
  readonly offsetMs: number;
  readonly outcome: CommandOutcome;
  readonly rule: string | null;
  readonly details: Record<string, unknown>;
  readonly auditSeq: number;
}

export async function insertCommand(
  db: Queryable,
  c: Omit<CommandRecord, 'username' | 'assetName'>,
): Promise<void> {
  await db.query(
    `insert into commands (id, session_id, user_id, asset_id, kind, command, occurred_at, offset_ms, outcome, rule, details, audit_seq)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      c.id,
      c.sessionId,
      c.userId,
      c.assetId,
      c.kind,
      c.command,
      c.occurredAt,
      c.offsetMs,
      c.outcome,
      c.rule,
      JSON.stringify(c.details),
      c.auditSeq,
    ],
  );
}

export interface CommandFilter {
  readonly sessionId?: string | undefined;
  readonly q?: string | undefined;
  readonly assetId?: string | undefined;
  readonly userId?: string | undefined;
  readonly from?: Date | undefined;
  readonly to?: Date | undefined;
  readonly visibleTo?: SessionFilter['visibleTo'];
  readonly limit?: number;
}

interface CommandRow {
  id: string;
  session_id: string;
  user_id: string;
  username: string;
  asset_id: string;
  asset_name: string;
  kind: CommandKind;
  command: string;
  occurred_at: Date;
  offset_ms: number;
  outcome: CommandOutcome;
  rule: string | null;
  details: Record<string, unknown>;
  audit_seq: number;
}

/** Substring search (case-insensitive) across every session the caller may see. */
export async function findCommands(db: Queryable, f: CommandFilter): Promise<CommandRecord[]> {
  const { rows } = await db.query<CommandRow>(
    `select c.*, u.username, a.name as asset_name
       from commands c join sessions s on s.id = c.session_id join users u on u.id = c.user_id join assets a on a.id = c.asset_id
      where ($1::text is null or c.session_id = $1)
        and ($2::text is null or c.command ilike '%' || replace(replace(replace($2, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')
        and ($3::text is null or c.asset_id = $3)
        and ($4::text is null or c.user_id = $4)
        and ($5::timestamptz is null or c.occurred_at >= $5)
        and ($6::timestamptz is null or c.occurred_at < $6)
        and ($7::boolean is false or s.user_id = $8 or s.zone_id = any ($9::text[]))
      order by c.audit_seq ${f.sessionId === undefined ? 'desc' : 'asc'}
      limit $10`,
    [
      f.sessionId ?? null,
      f.q ?? null,
      f.assetId ?? null,
      f.userId ?? null,
      f.from ?? null,
      f.to ?? null,
      f.visibleTo !== undefined,
      f.visibleTo?.userId ?? null,
      f.visibleTo?.zoneIds ?? [],
      f.limit ?? 200,
    ],
  );
  return rows.map((r) => ({
    id: r.id,
    sessionId: r.session_id,
    userId: r.user_id,
    username: r.username,
    assetId: r.asset_id,
    assetName: r.asset_name,
    kind: r.kind,
    command: r.command,
    occurredAt: r.occurred_at,
    offsetMs: r.offset_ms,
    outcome: r.outcome,
    rule: r.rule,
    details: r.details,
    auditSeq: r.audit_seq,
  }));
}
