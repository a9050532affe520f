import { sign } from 'node:crypto';
import {
  canonicalJson,
  listAuditEvents,
  MAX_AUDIT_PAGE_SIZE,
  type AuditEventRecord,
  type JsonValue,
} from '@airlock/audit';
import { AppError } from '@airlock/domain';
import { streamSessionChunks } from '@airlock/recording';
import type { BrokerContext } from '../../context.js';
import { auditEventView } from '../audit/routes.js';
import {
  commandsDigest,
  SESSION_EXPORT_FORMAT,
  sha256Hex,
  type ExportedAuditEvent,
  type ExportedChunk,
  type ExportedCommand,
  type ExportStatement,
  type SessionExport,
} from './export-verify.js';
import { findCommands, type SessionRecord } from './repository.js';

const HOW_TO_VERIFY =
  'Run `pnpm airlock verify-export <this file> [--public-key broker-audit-key.pem]` in an Airlock checkout ' +
  '(no account or database needed). It recomputes the recording hash chain and checks it against the head ' +
  'sealed in the session.end audit event, recomputes every audit event hash, matches each command to its ' +
  'write-ahead audit event, and verifies the broker signature over the digests of all parts.';

async function sessionEvents(ctx: BrokerContext, sessionId: string): Promise<AuditEventRecord[]> {
  const events: AuditEventRecord[] = [];
  for (let afterSeq = 0; ;) {
    const page = await listAuditEvents(ctx.pool, {
      subjectId: sessionId,
      afterSeq,
      limit: MAX_AUDIT_PAGE_SIZE,
      order: 'asc',
    });
    events.push(...page);
    const last = page.at(-1);
    if (last === undefined || page.length < MAX_AUDIT_PAGE_SIZE) return events;
    afterSeq = last.seq;
  }
}

/**
 * Bundles an ended session: its recording chunks (with their hash chain),
 * the asciicast to replay it, its commands, its audit events with their
 * hashes, and a signed statement over all of them (see export-verify.ts).
 */
export async function buildSessionExport(
  ctx: BrokerContext,
  session: SessionRecord,
  parts: { sessionJson: { id: string; [k: string]: JsonValue }; asciicast: AsyncIterable<string> },
): Promise<SessionExport> {
  if (session.endedAt === null) throw new AppError('session.export_live');
  const chunks: ExportedChunk[] = [];
  for await (const c of streamSessionChunks(ctx.pool, session.id)) {
    chunks.push({
      seq: c.seq,
      channel: c.channel,
      kind: c.kind,
      offsetMs: c.offsetMs,
      data: c.data.toString('base64'),
      prevHash: c.prevHash,
      hash: c.hash,
    });
  }
  let asciicast = '';
  for await (const line of parts.asciicast) asciicast += line;
  const commands: ExportedCommand[] = (
    await findCommands(ctx.pool, { sessionId: session.id, limit: 1_000_000 })
  ).map((c) => ({
    id: c.id,
    kind: c.kind,
    command: c.command,
    occurredAt: c.occurredAt.toISOString(),
    offsetMs: c.offsetMs,
    outcome: c.outcome,
    rule: c.rule,
    auditSeq: c.auditSeq,
  }));
  // The same view of an event as GET /api/v1/audit gives.
  const auditEvents: ExportedAuditEvent[] = (await sessionEvents(ctx, session.id)).map(
    auditEventView,
  );
  const statement: ExportStatement = {
    format: SESSION_EXPORT_FORMAT,
    sessionId: session.id,
    exportedAt: ctx.clock.now().toISOString(),
    recordingHead: chunks.at(-1)?.hash ?? null,
    recordingChunks: chunks.length,
    auditEventHashes: auditEvents.map((e) => e.hash),
    commandsSha256: commandsDigest(commands),
    asciicastSha256: sha256Hex(asciicast),
  };
  const signature = sign(
    null,
    Buffer.from(canonicalJson(statement as unknown as JsonValue), 'utf8'),
    ctx.auditKeys.privateKey,
  ).toString('base64');
  return {
    format: SESSION_EXPORT_FORMAT,
    session: parts.sessionJson,
    recording: { chunks },
    asciicast,
    commands,
    auditEvents,
    statement,
    signature,
    publicKey: ctx.auditKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    howToVerify: HOW_TO_VERIFY,
  };
}
