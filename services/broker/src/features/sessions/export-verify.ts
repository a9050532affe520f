import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import { canonicalJson, computeEventHash, type JsonValue } from '@airlock/audit';
import { chunkHash, isChunkKind, RECORDING_GENESIS_HASH } from '@airlock/recording';

/**
 * A session export: everything an outside auditor needs to replay a session
 * and to check, without an account or a database, that nothing in it was
 * changed after the broker recorded it. Verified by `pnpm airlock
 * verify-export <file>` (this module; pure, no I/O).
 */
export const SESSION_EXPORT_FORMAT = 'airlock-session-export/1';

export interface ExportedChunk {
  seq: number;
  channel: number;
  kind: string;
  offsetMs: number;
  /** The chunk's encoded frames, base64. */
  data: string;
  prevHash: string;
  hash: string;
}

export interface ExportedAuditEvent {
  seq: number;
  id: string;
  occurredAt: string;
  type: string;
  code: string;
  actor: { kind: string; id: string | null; ip: string | null };
  subjectId: string | null;
  outcome: string;
  data: { [k: string]: JsonValue };
  prevHash: string;
  hash: string;
}

export interface ExportedCommand {
  id: string;
  kind: string;
  command: string;
  occurredAt: string;
  offsetMs: number;
  outcome: string;
  rule: string | null;
  auditSeq: number;
}

/** What the broker signs: digests of every part of the bundle. */
export interface ExportStatement {
  format: string;
  sessionId: string;
  exportedAt: string;
  recordingHead: string | null;
  recordingChunks: number;
  auditEventHashes: string[];
  commandsSha256: string;
  asciicastSha256: string;
}

export interface SessionExport {
  format: string;
  session: { id: string; [k: string]: JsonValue };
  recording: { chunks: ExportedChunk[] };
  /** The terminal as asciicast v2, for `asciinema play`. */
  asciicast: string;
  commands: ExportedCommand[];
  auditEvents: ExportedAuditEvent[];
  statement: ExportStatement;
  /** Ed25519 over canonicalJson(statement), base64, by the broker's audit checkpoint key. */
  signature: string;
  /** That key (SPKI PEM); compare it with the one your organisation keeps for the broker. */
  publicKey: string;
  /** How to check this file. */
  howToVerify: string;
}

export interface ExportCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface ExportVerification {
  readonly ok: boolean;
  readonly checks: ExportCheck[];
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The commands as the statement digests them. */
export function commandsDigest(commands: ExportedCommand[]): string {
  return sha256Hex(canonicalJson(commands));
}

function checkRecording(bundle: SessionExport): ExportCheck {
  let prev = RECORDING_GENESIS_HASH;
  const chunks = bundle.recording.chunks;
  for (const [i, c] of chunks.entries()) {
    if (c.seq !== i + 1)
      return { name: 'recording', ok: false, detail: `chunk ${i + 1} has seq ${c.seq}` };
    if (c.prevHash !== prev)
      return { name: 'recording', ok: false, detail: `chunk ${c.seq} does not follow chunk ${i}` };
    if (!isChunkKind(c.kind))
      return { name: 'recording', ok: false, detail: `chunk ${c.seq} has kind ${c.kind}` };
    const hash = chunkHash(prev, {
      sessionId: bundle.session.id,
      seq: c.seq,
      channel: c.channel,
      kind: c.kind,
      offsetMs: c.offsetMs,
      data: Buffer.from(c.data, 'base64'),
    });
    if (hash !== c.hash)
      return { name: 'recording', ok: false, detail: `chunk ${c.seq} was changed` };
    prev = hash;
  }
  const head = chunks.length === 0 ? null : prev;
  const end = bundle.auditEvents.find((e) => e.type === 'session.end');
  if (end === undefined)
    return { name: 'recording', ok: false, detail: 'no session.end event seals the recording' };
  if (end.data.recordingHead !== head || end.data.recordingChunks !== chunks.length)
    return {
      name: 'recording',
      ok: false,
      detail: `the recording (${chunks.length} chunks, head ${head ?? 'none'}) is not the one session.end sealed (${JSON.stringify(end.data.recordingChunks)} chunks, head ${JSON.stringify(end.data.recordingHead)})`,
    };
  return {
    name: 'recording',
    ok: true,
    detail: `${chunks.length} chunks chain from genesis to ${head ?? 'nothing'}, as sealed in session.end (event ${end.seq})`,
  };
}

function checkAuditEvents(bundle: SessionExport): ExportCheck {
  for (const e of bundle.auditEvents) {
    const hash = computeEventHash(e.prevHash, {
      seq: e.seq,
      id: e.id,
      occurredAt: e.occurredAt,
      type: e.type,
      code: e.code,
      actorKind: e.actor.kind,
      actorId: e.actor.id,
      subjectId: e.subjectId,
      sourceIp: e.actor.ip,
      outcome: e.outcome,
      data: e.data,
    });
    if (hash !== e.hash)
      return { name: 'audit events', ok: false, detail: `event ${e.seq} (${e.type}) was changed` };
    if (e.subjectId !== bundle.session.id)
      return { name: 'audit events', ok: false, detail: `event ${e.seq} is about another subject` };
  }
  return {
    name: 'audit events',
    ok: true,
    detail: `${bundle.auditEvents.length} events match their hashes (compare any hash with the broker's trail to anchor them)`,
  };
}

function checkCommands(bundle: SessionExport): ExportCheck {
  for (const c of bundle.commands) {
    const event = bundle.auditEvents.find((e) => e.seq === c.auditSeq);
    if (
      event === undefined ||
      !event.type.startsWith('session.command') ||
      event.data.commandId !== c.id ||
      event.data.command !== c.command
    )
      return {
        name: 'commands',
        ok: false,
        detail: `command ${c.id} does not match its audit event ${c.auditSeq}`,
      };
  }
  return {
    name: 'commands',
    ok: true,
    detail: `${bundle.commands.length} commands match their write-ahead audit events`,
  };
}

function checkStatement(bundle: SessionExport, pinnedPublicKey: string | null): ExportCheck {
  const s = bundle.statement;
  const chunks = bundle.recording.chunks;
  const mismatch =
    s.format !== SESSION_EXPORT_FORMAT
      ? 'format'
      : s.sessionId !== bundle.session.id
        ? 'sessionId'
        : s.recordingHead !== (chunks.at(-1)?.hash ?? null) || s.recordingChunks !== chunks.length
          ? 'recording'
          : canonicalJson(s.auditEventHashes) !==
              canonicalJson(bundle.auditEvents.map((e) => e.hash))
            ? 'auditEventHashes'
            : s.commandsSha256 !== commandsDigest(bundle.commands)
              ? 'commands'
              : s.asciicastSha256 !== sha256Hex(bundle.asciicast)
                ? 'asciicast'
                : null;
  if (mismatch !== null)
    return { name: 'signature', ok: false, detail: `the statement's ${mismatch} does not match` };
  const publicKey = pinnedPublicKey ?? bundle.publicKey;
  let valid: boolean;
  try {
    valid = verifySignature(
      null,
      Buffer.from(canonicalJson(s as unknown as JsonValue), 'utf8'),
      createPublicKey(publicKey),
      Buffer.from(bundle.signature, 'base64'),
    );
  } catch {
    valid = false;
  }
  if (!valid)
    return {
      name: 'signature',
      ok: false,
      detail: 'the broker signature does not verify with the public key',
    };
  return {
    name: 'signature',
    ok: true,
    detail:
      pinnedPublicKey === null
        ? 'signed by the key in the file (pin the broker key with --public-key to rule out a re-signed file)'
        : 'signed by the pinned broker key',
  };
}

/** Checks a session export; every check runs, so the report names every problem. */
export function verifySessionExport(
  bundle: SessionExport,
  options: { publicKey?: string } = {},
): ExportVerification {
  const guard = (name: string, check: () => ExportCheck): ExportCheck => {
    try {
      return check();
    } catch (err) {
      return { name, ok: false, detail: `malformed: ${(err as Error).message}` };
    }
  };
  const checks = [
    guard('recording', () => checkRecording(bundle)),
    guard('audit events', () => checkAuditEvents(bundle)),
    guard('commands', () => checkCommands(bundle)),
    guard('signature', () => checkStatement(bundle, options.publicKey ?? null)),
  ];
  return { ok: checks.every((c) => c.ok), checks };
}
