import type { Pool, PoolClient, Queryable } from '@airlock/db';
import { withTransaction } from '@airlock/db';
import { AppError, newId, type Clock } from '@airlock/domain';
import { canonicalJson } from './canonical-json.js';
import {
  computeEventHash,
  GENESIS_HASH,
  type AuditActorKind,
  type AuditEventInput,
  type AuditEventRecord,
  type JsonValue,
} from './chain.js';
import { AUDIT_EVENT_TYPES, isAuditEventType } from './event-types.js';

/**
 * Taken (transaction-scoped) by every append, so that appends are serialised
 * and each one sees the head left by the previous commit. Distinct from the
 * migration runner's key.
 */
const AUDIT_APPEND_LOCK_KEY = 0x41_75_64_31; // "Aud1"

interface ActorColumns {
  actorKind: AuditActorKind;
  actorId: string | null;
  sourceIp: string | null;
}

function actorColumns(actor: AuditEventInput['actor']): ActorColumns {
  switch (actor.kind) {
    case 'user':
    case 'connector':
      if (typeof actor.id !== 'string' || actor.id === '')
        throw new TypeError(`An audit actor of kind ${actor.kind} needs an id`);
      return { actorKind: actor.kind, actorId: actor.id, sourceIp: actor.ip ?? null };
    case 'anonymous':
      return { actorKind: 'anonymous', actorId: null, sourceIp: actor.ip ?? null };
    case 'system':
      return { actorKind: 'system', actorId: null, sourceIp: null };
    default:
      throw new TypeError(`Unknown audit actor kind ${String((actor as { kind: unknown }).kind)}`);
  }
}

/**
 * Appends an event to the audit chain inside the caller's open transaction, so
 * that the event commits or rolls back together with the change it describes.
 *
 * `client` must be inside BEGIN at READ COMMITTED (the default of
 * withTransaction); anything else is refused with an error, because:
 * outside a transaction the append lock would be released at once and the
 * event would not be atomic with the change; under REPEATABLE READ or
 * SERIALIZABLE the transaction's snapshot may predate the previous append,
 * so the head read here would be stale.
 *
 * The append lock is held until the caller commits, so all audited
 * transactions are serialised from this point on: append last, just before
 * commit, and keep slow work (network calls) out of the transaction.
 */
export async function appendAuditEvent(
  client: PoolClient,
  event: AuditEventInput,
  clock: Clock,
): Promise<AuditEventRecord> {
  const prepared = prepare(event);
  const occurredAt = clock.now();
  const occurredAtIso = occurredAt.toISOString(); // throws RangeError for an invalid Date, before any SQL

  // SAVEPOINT fails outside a transaction block, which makes it a cheap probe; it
  // is released before any write so that no subtransaction ID is ever assigned.
  // One round trip (simple query protocol allows several statements).
  try {
    await client.query(
      `savepoint airlock_audit_append; release savepoint airlock_audit_append; select pg_advisory_xact_lock(${AUDIT_APPEND_LOCK_KEY})`,
    );
  } catch (err) {
    if ((err as { code?: unknown }).code === '25P01') {
      throw new Error(
        'appendAuditEvent must be called inside a transaction (use withTransaction or appendAuditEventStandalone)',
        { cause: err },
      );
    }
    throw err;
  }

  // A new statement, so at READ COMMITTED it sees every append committed before the lock was granted.
  const head = await client.query<{
    isolation: string;
    seq: string | number | null;
    hash: string | null;
  }>(
    `select current_setting('transaction_isolation') as isolation, h.seq, h.hash
       from (select 1) as one
       left join lateral (select seq, hash from audit_events order by seq desc limit 1) as h on true`,
  );
  const headRow = head.rows[0];
  if (headRow === undefined) throw new Error('audit head query returned no row');
  if (headRow.isolation !== 'read committed') {
    throw new Error(
      `appendAuditEvent needs a READ COMMITTED transaction, not ${headRow.isolation}: the chain head would be read from a stale snapshot`,
    );
  }

  const seq = headRow.seq === null ? 1 : toSafeInteger(headRow.seq) + 1;
  const prevHash = headRow.hash ?? GENESIS_HASH;
  const id = newId('auditEvent');
  const hash = computeEventHash(prevHash, {
    seq,
    id,
    occurredAt: occurredAtIso,
    type: prepared.type,
    code: prepared.code,
    actorKind: prepared.actorKind,
    actorId: prepared.actorId,
    subjectId: prepared.subjectId,
    sourceIp: prepared.sourceIp,
    outcome: prepared.outcome,
    data: prepared.data,
  });

  await client.query(
    `insert into audit_events
       (seq, id, occurred_at, type, code, actor_kind, actor_id, subject_id, source_ip, outcome, data, prev_hash, hash)
     values ($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)`,
    [
      seq,
      id,
      occurredAtIso,
      prepared.type,
      prepared.code,
      prepared.actorKind,
      prepared.actorId,
      prepared.subjectId,
      prepared.sourceIp,
      prepared.outcome,
      prepared.dataJson,
      prevHash,
      hash,
    ],
  );

  return {
    seq,
    id,
    occurredAt: new Date(occurredAtIso),
    type: prepared.type,
    code: prepared.code,
    actorKind: prepared.actorKind,
    actorId: prepared.actorId,
    subjectId: prepared.subjectId,
    sourceIp: prepared.sourceIp,
    outcome: prepared.outcome,
    data: prepared.data,
    prevHash,
    hash,
  };
}

/** Appends an event that accompanies no other change (a failed sign-in, a refused request) in a transaction of its own. */
export async function appendAuditEventStandalone(
  pool: Pool,
  event: AuditEventInput,
  clock: Clock,
): Promise<AuditEventRecord> {
  return withTransaction(pool, (client) => appendAuditEvent(client, event, clock));
}

interface PreparedEvent extends ActorColumns {
  type: string;
  code: string;
  subjectId: string | null;
  outcome: 'success' | 'failure';
  data: { [k: string]: JsonValue };
  dataJson: string;
}

/** Checks the event and fixes its stored form; runs before any SQL so a bad event touches nothing. */
function prepare(event: AuditEventInput): PreparedEvent {
  if (!isAuditEventType(event.type))
    throw new TypeError(`Unknown audit event type ${String(event.type)}`);
  const actor = actorColumns(event.actor);
  const outcome = event.outcome ?? 'success';
  if (outcome !== 'success' && outcome !== 'failure')
    throw new TypeError(`Unknown audit outcome ${String(outcome)}`);
  const rawData: unknown = event.data ?? {};
  if (typeof rawData !== 'object' || rawData === null || Array.isArray(rawData)) {
    throw new TypeError('Audit event data must be a JSON object');
  }
  const dataJson = canonicalJson(rawData);
  return {
    type: event.type,
    code: AUDIT_EVENT_TYPES[event.type].code,
    ...actor,
    subjectId: event.subjectId ?? null,
    outcome,
    // Re-parsed from the canonical text: the record returned equals what a later read returns (undefined members gone).
    data: JSON.parse(dataJson) as { [k: string]: JsonValue },
    dataJson,
  };
}

export interface AuditQuery {
  type?: string;
  actorId?: string;
  subjectId?: string;
  /** Inclusive. */
  from?: Date;
  /** Exclusive. */
  to?: Date;
  /** Only events with a larger seq (for paging forward). */
  afterSeq?: number;
  /** Only events with a smaller seq (for paging backward with order 'desc'). */
  beforeSeq?: number;
  /** Default 100; larger values are capped at 1000. */
  limit?: number;
  /** By seq; default 'asc'. */
  order?: 'asc' | 'desc';
}

export const DEFAULT_AUDIT_PAGE_SIZE = 100;
export const MAX_AUDIT_PAGE_SIZE = 1000;

const SELECT_EVENT = `select seq::text as seq_text, id, (extract(epoch from occurred_at) * 1000000)::bigint::text as occurred_us,
  type, code, actor_kind, actor_id, subject_id, source_ip, outcome, data, prev_hash, hash from audit_events`;

interface EventRow {
  seq_text: string;
  id: string;
  occurred_us: string;
  type: string;
  code: string;
  actor_kind: AuditActorKind;
  actor_id: string | null;
  subject_id: string | null;
  source_ip: string | null;
  outcome: 'success' | 'failure';
  data: { [k: string]: JsonValue };
  prev_hash: string;
  hash: string;
}

/** A stored event as read, with its timestamp in the exact text form its hash must be computed over. */
export interface StoredAuditEvent {
  record: AuditEventRecord;
  occurredAtText: string;
}

function fromRow(row: EventRow): StoredAuditEvent {
  // Microseconds as an exact integer: Date has only milliseconds, and a change
  // below the millisecond must still be visible to verification.
  const micros = BigInt(row.occurred_us);
  let subMs = micros % 1000n;
  let ms = micros / 1000n;
  if (subMs < 0n) {
    subMs += 1000n;
    ms -= 1n;
  }
  const occurredAt = new Date(Number(ms));
  const iso = occurredAt.toISOString();
  const occurredAtText =
    subMs === 0n ? iso : `${iso.slice(0, -1)}${subMs.toString().padStart(3, '0')}Z`;
  return {
    record: {
      seq: toSafeInteger(row.seq_text),
      id: row.id,
      occurredAt,
      type: row.type,
      code: row.code,
      actorKind: row.actor_kind,
      actorId: row.actor_id,
      subjectId: row.subject_id,
      sourceIp: row.source_ip,
      outcome: row.outcome,
      data: row.data,
      prevHash: row.prev_hash,
      hash: row.hash,
    },
    occurredAtText,
  };
}

function toSafeInteger(value: string | number): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n))
    throw new Error(`Audit sequence number ${String(value)} is out of range`);
  return n;
}

function checkSeqBound(name: string, value: number | undefined): void {
  if (value !== undefined && !Number.isSafeInteger(value)) {
    throw new AppError('request.invalid', { detail: `${name} must be an integer` });
  }
}

function checkDate(name: string, value: Date | undefined): void {
  if (value !== undefined && Number.isNaN(value.getTime())) {
    throw new AppError('request.invalid', { detail: `${name} must be a valid date` });
  }
}

/** One page of events matching every given filter, ordered by seq. */
export async function listAuditEvents(
  db: Queryable,
  query: AuditQuery,
): Promise<AuditEventRecord[]> {
  const limit = query.limit ?? DEFAULT_AUDIT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1)
    throw new AppError('request.invalid', { detail: 'limit must be a positive integer' });
  checkSeqBound('afterSeq', query.afterSeq);
  checkSeqBound('beforeSeq', query.beforeSeq);
  checkDate('from', query.from);
  checkDate('to', query.to);
  const order = query.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc')
    throw new AppError('request.invalid', { detail: "order must be 'asc' or 'desc'" });

  const conditions: string[] = [];
  const params: unknown[] = [];
  const where = (sql: (placeholder: string) => string, value: unknown): void => {
    params.push(value);
    conditions.push(sql(`$${params.length}`));
  };
  if (query.type !== undefined) where((p) => `type = ${p}`, query.type);
  if (query.actorId !== undefined) where((p) => `actor_id = ${p}`, query.actorId);
  if (query.subjectId !== undefined) where((p) => `subject_id = ${p}`, query.subjectId);
  if (query.from !== undefined)
    where((p) => `occurred_at >= ${p}::timestamptz`, query.from.toISOString());
  if (query.to !== undefined)
    where((p) => `occurred_at < ${p}::timestamptz`, query.to.toISOString());
  if (query.afterSeq !== undefined) where((p) => `seq > ${p}`, query.afterSeq);
  if (query.beforeSeq !== undefined) where((p) => `seq < ${p}`, query.beforeSeq);
  params.push(Math.min(limit, MAX_AUDIT_PAGE_SIZE));

  const { rows } = await db.query<EventRow>(
    `${SELECT_EVENT} ${conditions.length > 0 ? `where ${conditions.join(' and ')}` : ''}
     order by seq ${order} limit $${params.length}`,
    params,
  );
  return rows.map((row) => fromRow(row).record);
}

export interface StreamOptions {
  /** First seq to return (inclusive); default 1. */
  fromSeq?: number | undefined;
  /** Last seq to return (inclusive); default: until the end, including events appended while streaming. */
  toSeq?: number | undefined;
  /** Rows per query; default 500. */
  batchSize?: number | undefined;
}

/** Like streamAuditEvents, with each event's timestamp also in its exact stored precision (for verification). */
export async function* streamStoredAuditEvents(
  db: Queryable,
  options: StreamOptions = {},
): AsyncGenerator<StoredAuditEvent> {
  const batchSize = options.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new TypeError('batchSize must be a positive integer');
  let after = (options.fromSeq ?? 1) - 1;
  if (!Number.isSafeInteger(after)) throw new TypeError('fromSeq must be an integer');
  const toSeq = options.toSeq ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(toSeq)) throw new TypeError('toSeq must be an integer');
  for (;;) {
    // Keyset pagination: each batch is one short query on the primary key, so
    // memory stays constant and no cursor or transaction is held open.
    const { rows } = await db.query<EventRow>(
      `${SELECT_EVENT} where seq > $1 and seq <= $2 order by seq limit $3`,
      [after, toSeq, batchSize],
    );
    for (const row of rows) {
      const stored = fromRow(row);
      after = stored.record.seq;
      yield stored;
    }
    if (rows.length < batchSize) return;
  }
}

/** Every event in seq order, fetched in batches (constant memory); events appended meanwhile are included. */
export async function* streamAuditEvents(
  db: Queryable,
  options: StreamOptions = {},
): AsyncGenerator<AuditEventRecord> {
  for await (const stored of streamStoredAuditEvents(db, options)) yield stored.record;
}

/** The last event's seq and hash, or null when the trail is empty. */
export async function readAuditHead(db: Queryable): Promise<{ seq: number; hash: string } | null> {
  const { rows } = await db.query<{ seq_text: string; hash: string }>(
    'select seq::text as seq_text, hash from audit_events order by seq desc limit 1',
  );
  const row = rows[0];
  return row === undefined ? null : { seq: toSafeInteger(row.seq_text), hash: row.hash };
}
