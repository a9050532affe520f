import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import type { AuditEventType } from './event-types.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** Who caused an event. `ip` is the client address as the broker saw it. */
export type AuditActor =
  | { kind: 'user'; id: string; ip?: string | undefined }
  | { kind: 'anonymous'; ip?: string | undefined }
  | { kind: 'system' }
  | { kind: 'connector'; id: string; ip?: string | undefined };

export type AuditActorKind = AuditActor['kind'];

export interface AuditEventInput {
  type: AuditEventType;
  actor: AuditActor;
  /** The resource the event is about (req_…, grt_…, usr_…). */
  subjectId?: string | null | undefined;
  /** Defaults to 'success'. */
  outcome?: 'success' | 'failure' | undefined;
  /** Must be canonicalisable (see canonical-json.ts); `undefined` members are dropped. */
  data?: { [k: string]: JsonValue } | undefined;
}

export interface AuditEventRecord {
  seq: number;
  id: string;
  occurredAt: Date;
  type: string;
  code: string;
  actorKind: AuditActorKind;
  actorId: string | null;
  subjectId: string | null;
  sourceIp: string | null;
  outcome: 'success' | 'failure';
  data: { [k: string]: JsonValue };
  prevHash: string;
  hash: string;
}

/** The prevHash of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The fields an event's hash covers, with `occurredAt` as text. The text form
 * matters: the writer always produces millisecond ISO strings, while the
 * database keeps microseconds, so an occurred_at altered below the millisecond
 * is read back with six fraction digits and no longer matches.
 */
export interface HashedEventFields {
  seq: number;
  id: string;
  occurredAt: string;
  type: string;
  code: string;
  actorKind: string;
  actorId: string | null;
  subjectId: string | null;
  sourceIp: string | null;
  outcome: string;
  data: unknown;
}

/** sha256 hex over prevHash, a newline, and the canonical JSON of the hashed fields. */
export function computeEventHash(prevHash: string, fields: HashedEventFields): string {
  // Spelled out so that a field added to HashedEventFields by mistake (or a
  // stray property on the argument) cannot silently change what is hashed.
  const body = canonicalJson({
    seq: fields.seq,
    id: fields.id,
    occurredAt: fields.occurredAt,
    type: fields.type,
    code: fields.code,
    actorKind: fields.actorKind,
    actorId: fields.actorId,
    subjectId: fields.subjectId,
    sourceIp: fields.sourceIp,
    outcome: fields.outcome,
    data: fields.data,
  });
  return createHash('sha256').update(`${prevHash}\n${body}`, 'utf8').digest('hex');
}

/** The hashed fields of a record whose timestamp has millisecond precision. */
export function hashedFieldsOf(record: AuditEventRecord): HashedEventFields {
  return {
    seq: record.seq,
    id: record.id,
    occurredAt: record.occurredAt.toISOString(),
    type: record.type,
    code: record.code,
    actorKind: record.actorKind,
    actorId: record.actorId,
    subjectId: record.subjectId,
    sourceIp: record.sourceIp,
    outcome: record.outcome,
    data: record.data,
  };
}
