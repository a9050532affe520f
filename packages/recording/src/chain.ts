import { createHash } from 'node:crypto';
import { isChunkKind, type ChunkKind } from './frames.js';

/**
 * One row of session_chunks. Each chunk's hash covers its content and the
 * previous chunk's hash, so changing, removing or reordering any chunk breaks
 * every link after it (DESIGN invariant 5). The chain is per session: sessions
 * are recorded concurrently on many replicas, and one global chain would
 * serialise all of them.
 */
export interface StoredChunk {
  sessionId: string;
  /** 1, 2, 3, … without gaps, in the order the chunks were sealed. */
  seq: number;
  channel: number;
  kind: ChunkKind;
  /** Offset of the chunk's first frame from the session start, in ms. */
  offsetMs: number;
  /** Encoded frames (see frames.ts). */
  data: Buffer;
  prevHash: string;
  hash: string;
}

export type ChunkContent = Omit<StoredChunk, 'prevHash' | 'hash'>;

/** The prevHash of a session's first chunk. */
export const RECORDING_GENESIS_HASH = '0'.repeat(64);

const HASH_PATTERN = /^[0-9a-f]{64}$/;
const INT4_MAX = 2 ** 31 - 1;

function requireInt(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min || value > INT4_MAX)
    throw new RangeError(`chunk ${name} must be an integer in [${min}, ${INT4_MAX}], not ${value}`);
}

/**
 * sha256 hex over prevHash, a newline, and the canonical JSON of
 * {channel, dataSha256, kind, offsetMs, seq, sessionId}.
 *
 * The same construction as the audit chain (packages/audit/src/chain.ts). The
 * body holds only strings and integers, for which JSON.stringify of an object
 * with keys in sorted order *is* the RFC 8785 canonical form, so the audit
 * package's general canonicaliser is not needed here. Hashing the data's
 * digest rather than the data keeps the canonical text small and lets the data
 * be hashed straight from the buffer.
 *
 * The fields are checked against the column constraints first, so a value the
 * database would store differently (a fractional offset, say) is refused
 * instead of hashed.
 */
export function chunkHash(prevHash: string, c: ChunkContent): string {
  if (!HASH_PATTERN.test(prevHash)) throw new TypeError('prevHash must be 64 lowercase hex digits');
  if (typeof c.sessionId !== 'string' || c.sessionId === '')
    throw new TypeError('chunk sessionId must be a non-empty string');
  requireInt('seq', c.seq, 1);
  requireInt('channel', c.channel, -(2 ** 31));
  requireInt('offsetMs', c.offsetMs, 0);
  if (!isChunkKind(c.kind)) throw new TypeError(`unknown chunk kind ${String(c.kind)}`);
  // Keys in sorted order: this literal is the canonical form (see above).
  const body = JSON.stringify({
    channel: c.channel,
    dataSha256: createHash('sha256').update(c.data).digest('hex'),
    kind: c.kind,
    offsetMs: c.offsetMs,
    seq: c.seq,
    sessionId: c.sessionId,
  });
  return createHash('sha256').update(`${prevHash}\n${body}`, 'utf8').digest('hex');
}
