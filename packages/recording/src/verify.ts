import type { Queryable } from '@airlock/db';
import { chunkHash, RECORDING_GENESIS_HASH } from './chain.js';
import { decodeFrames } from './frames.js';
import { streamSessionChunks } from './repository.js';

export type RecordingVerifyFailureReason =
  | 'hash_mismatch'
  | 'prev_hash_mismatch'
  | 'seq_gap'
  | 'decode_error'
  | 'head_mismatch'
  | 'count_mismatch';

export interface RecordingVerifyFailure {
  /** The first bad chunk; for a missing chunk, the seq it should have had. */
  seq: number;
  reason: RecordingVerifyFailureReason;
  message: string;
}

export interface RecordingVerifyResult {
  ok: boolean;
  /** Chunks verified (on failure: verified before the first bad one). */
  chunks: number;
  /** Hash of the last verified chunk; the genesis hash when there is none. */
  head: string;
  firstBad?: RecordingVerifyFailure;
}

/**
 * Recomputes a session's chunk chain from the genesis (streaming, constant
 * memory) and reports the first bad chunk.
 *
 * A changed field changes that chunk's hash; a removed chunk leaves a seq gap
 * or, when later chunks were renumbered, a prev_hash that no longer links;
 * reordered chunks break the links. What the chain alone cannot see is the
 * loss of chunks from the end, or a tail rewritten with recomputed hashes:
 * pass `expected` — the count and head that close() returned, kept in the
 * sessions row and the session.end audit event — to catch those too.
 * `expected.head` null means the session recorded nothing.
 */
export async function verifySessionRecording(
  db: Queryable,
  sessionId: string,
  expected?: { chunks: number; head: string | null },
): Promise<RecordingVerifyResult> {
  let chunks = 0;
  let head = RECORDING_GENESIS_HASH;
  const fail = (firstBad: RecordingVerifyFailure): RecordingVerifyResult => ({
    ok: false,
    chunks,
    head,
    firstBad,
  });

  for await (const chunk of streamSessionChunks(db, sessionId)) {
    const seq = chunks + 1;
    if (chunk.seq !== seq) {
      return fail({
        seq,
        reason: 'seq_gap',
        message: `Chunk ${seq} is missing: the next stored chunk is ${chunk.seq}`,
      });
    }
    if (chunk.prevHash !== head) {
      return fail({
        seq,
        reason: 'prev_hash_mismatch',
        message: `Chunk ${seq} does not link to chunk ${seq - 1}: its prev_hash is ${chunk.prevHash}, expected ${head}`,
      });
    }
    let computed: string;
    try {
      computed = chunkHash(chunk.prevHash, chunk);
    } catch (err) {
      computed = `(unhashable: ${err instanceof Error ? err.message : String(err)})`;
    }
    if (computed !== chunk.hash) {
      return fail({
        seq,
        reason: 'hash_mismatch',
        message: `Chunk ${seq} was altered: its stored hash is ${chunk.hash}, its content hashes to ${computed}`,
      });
    }
    // Only a faulty writer can get here (the hash vouches for the bytes), but a
    // chunk that cannot be replayed must not pass as a good recording.
    try {
      decodeFrames(chunk.data, chunk.offsetMs);
    } catch (err) {
      return fail({
        seq,
        reason: 'decode_error',
        message: `Chunk ${seq} cannot be decoded: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
    chunks = seq;
    head = chunk.hash;
  }

  if (expected !== undefined) {
    const expectedHead = expected.head ?? RECORDING_GENESIS_HASH;
    if (chunks !== expected.chunks) {
      return fail({
        seq: Math.min(chunks, expected.chunks) + 1,
        reason: 'count_mismatch',
        message:
          chunks < expected.chunks
            ? `Chunks were removed from the end: the session recorded ${expected.chunks}, ${chunks} are stored`
            : `Chunks were added after the end: the session recorded ${expected.chunks}, ${chunks} are stored`,
      });
    }
    if (head !== expectedHead) {
      return fail({
        seq: chunks,
        reason: 'head_mismatch',
        message: `The recording was rewritten: the session ended with head ${expectedHead}, the stored chain gives ${head}`,
      });
    }
  }
  return { ok: true, chunks, head };
}
