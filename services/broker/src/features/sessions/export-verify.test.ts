/**
 * The offline check of a session export catches every kind of change an
 * outsider must be able to rule out: recording bytes, order and length,
 * audit events, commands, and a re-signed statement.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { canonicalJson, computeEventHash, GENESIS_HASH, type JsonValue } from '@airlock/audit';
import { chunkHash, encodeFrames, RECORDING_GENESIS_HASH } from '@airlock/recording';
import { describe, expect, it } from 'vitest';
import {
  commandsDigest,
  SESSION_EXPORT_FORMAT,
  sha256Hex,
  verifySessionExport,
  type ExportedAuditEvent,
  type ExportedChunk,
  type SessionExport,
} from './export-verify.js';

const SESSION = 'ses_0123456789abcdefghij';

function event(
  seq: number,
  prevHash: string,
  type: string,
  data: { [k: string]: JsonValue },
): ExportedAuditEvent {
  const e = {
    seq,
    id: `evt_${String(seq).padStart(20, '0')}`,
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    type,
    code: 'AL5000I',
    actor: { kind: 'user', id: 'usr_vera', ip: '127.0.0.1' },
    subjectId: SESSION,
    outcome: 'success',
    data,
    prevHash,
  };
  const hash = computeEventHash(prevHash, {
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
  return { ...e, hash };
}

function signBundle(bundle: SessionExport, privateKey: KeyObject): void {
  bundle.statement = {
    format: SESSION_EXPORT_FORMAT,
    sessionId: SESSION,
    exportedAt: '2026-01-01T01:00:00.000Z',
    recordingHead: bundle.recording.chunks.at(-1)?.hash ?? null,
    recordingChunks: bundle.recording.chunks.length,
    auditEventHashes: bundle.auditEvents.map((e) => e.hash),
    commandsSha256: commandsDigest(bundle.commands),
    asciicastSha256: sha256Hex(bundle.asciicast),
  };
  bundle.signature = sign(
    null,
    Buffer.from(canonicalJson(bundle.statement as unknown as JsonValue)),
    privateKey,
  ).toString('base64');
}

function makeExport(): { bundle: SessionExport; publicKeyPem: string; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const chunks: ExportedChunk[] = [];
  let prev = RECORDING_GENESIS_HASH;
  for (const [i, text] of ['asset$ ', 'echo hi\r\n', 'hi\r\nasset$ '].entries()) {
    const data = encodeFrames([{ offsetMs: i * 100, data: Buffer.from(text) }], i * 100);
    const content = {
      sessionId: SESSION,
      seq: i + 1,
      channel: 0,
      kind: 'o' as const,
      offsetMs: i * 100,
      data,
    };
    const hash = chunkHash(prev, content);
    chunks.push({ ...content, data: data.toString('base64'), prevHash: prev, hash });
    prev = hash;
  }
  const start = event(10, GENESIS_HASH, 'session.start', { asset: 'hmi-01' });
  const command = event(11, start.hash, 'session.command', {
    commandId: 'cmd_1',
    command: 'echo hi',
  });
  const end = event(12, command.hash, 'session.end', {
    recordingHead: prev,
    recordingChunks: chunks.length,
  });
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const bundle: SessionExport = {
    format: SESSION_EXPORT_FORMAT,
    session: { id: SESSION },
    recording: { chunks },
    asciicast: '{"version":2,"width":80,"height":24}\n[0.1,"o","asset$ "]\n',
    commands: [
      {
        id: 'cmd_1',
        kind: 'shell',
        command: 'echo hi',
        occurredAt: '2026-01-01T00:00:11.000Z',
        offsetMs: 150,
        outcome: 'forwarded',
        rule: null,
        auditSeq: 11,
      },
    ],
    auditEvents: [start, command, end],
    statement: null as unknown as SessionExport['statement'],
    signature: '',
    publicKey: publicKeyPem,
    howToVerify: '',
  };
  signBundle(bundle, privateKey);
  return { bundle, publicKeyPem, privateKey };
}

const failed = (bundle: SessionExport, options: { publicKey?: string } = {}) =>
  verifySessionExport(bundle, options)
    .checks.filter((c) => !c.ok)
    .map((c) => c.name);

describe('verifySessionExport', () => {
  it('accepts an untouched export, with the key in the file or pinned', () => {
    const { bundle, publicKeyPem } = makeExport();
    expect(verifySessionExport(bundle).ok).toBe(true);
    expect(verifySessionExport(bundle, { publicKey: publicKeyPem }).ok).toBe(true);
  });

  it('catches changed, removed and reordered recording chunks', () => {
    const changed = makeExport().bundle;
    changed.recording.chunks[1]!.data = Buffer.from('tampered').toString('base64');
    expect(failed(changed)).toContain('recording');

    const truncated = makeExport().bundle;
    truncated.recording.chunks.pop();
    expect(failed(truncated)).toContain('recording');

    const reordered = makeExport().bundle;
    reordered.recording.chunks.reverse();
    expect(failed(reordered)).toContain('recording');
  });

  it('catches a changed audit event and a command that no longer matches its event', () => {
    const eventChanged = makeExport().bundle;
    eventChanged.auditEvents[0]!.data = { asset: 'other' };
    expect(failed(eventChanged)).toEqual(['audit events']);

    const commandChanged = makeExport().bundle;
    commandChanged.commands[0]!.command = 'echo nothing';
    expect(failed(commandChanged)).toEqual(['commands', 'signature']);
  });

  it('catches a consistent rewrite re-signed with another key, once the broker key is pinned', () => {
    const { bundle, publicKeyPem } = makeExport();
    const forger = generateKeyPairSync('ed25519');
    bundle.asciicast = '{"version":2,"width":80,"height":24}\n';
    bundle.publicKey = forger.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    signBundle(bundle, forger.privateKey);
    // Internally consistent, signed by the key in the file…
    expect(verifySessionExport(bundle).ok).toBe(true);
    // …but not by the broker's.
    expect(failed(bundle, { publicKey: publicKeyPem })).toEqual(['signature']);
  });

  it('reports a malformed file instead of throwing', () => {
    const { bundle } = makeExport();
    (bundle.recording.chunks[0] as { offsetMs: unknown }).offsetMs = 'soon';
    expect(failed(bundle)).toContain('recording');
  });
});
