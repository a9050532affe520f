import type { KeyObject } from 'node:crypto';
import type { Queryable } from '@airlock/db';
import { computeEventHash, GENESIS_HASH } from './chain.js';
import {
  checkCheckpointSignature,
  latestCheckpoint,
  requireEd25519,
  streamCheckpoints,
  type StoredCheckpoint,
} from './checkpoint.js';
import { readAuditHead, streamStoredAuditEvents } from './repository.js';

export type VerifyFailureReason =
  | 'hash_mismatch'
  | 'prev_hash_mismatch'
  | 'seq_gap'
  | 'checkpoint_mismatch'
  | 'checkpoint_signature_invalid'
  | 'truncated';

export interface VerifyFailure {
  /** The seq of the first bad event (for a missing event, the seq it should have had). */
  seq: number;
  /** The id stored at that seq; null when no event is stored there. */
  id: string | null;
  reason: VerifyFailureReason;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Events verified (on failure: verified before the first bad one). */
  events: number;
  /** The chain head: the last verified event, or on failure the stored head when verification began. */
  head: { seq: number; hash: string } | null;
  /** The latest checkpoint that was checked and found valid. */
  checkpoint: { seq: number; createdAt: string } | null;
  firstBad?: VerifyFailure;
}

interface WalkOptions {
  publicKey: KeyObject;
  /** Start at this (trusted once its signature and head hash check out) checkpoint instead of the genesis. */
  start: StoredCheckpoint | null;
  /** Verify events up to this seq only. */
  toSeq: number | null;
  /** Check checkpoints up to this seq only. */
  checkpointsToSeq: number | null;
}

interface WalkOutcome {
  events: number;
  last: { seq: number; hash: string } | null;
  checkpoint: { seq: number; createdAt: string } | null;
  problem: VerifyFailure | null;
}

/**
 * Walks the chain in seq order, recomputing every hash and checking every
 * checkpoint at the seq it vouches for, and stops at the first problem.
 *
 * What each check catches (DESIGN invariant 5): a changed field changes the
 * event's hash; a removed event leaves a seq gap, or, if the later events were
 * renumbered, a prev_hash that no longer links; reordered events break the
 * links; a chain rewritten with recomputed hashes no longer matches the signed
 * head hash of any checkpoint after the rewrite point; events removed from the
 * tail leave a checkpoint beyond the end. Events after the latest checkpoint
 * are protected only by the chain, so checkpoint often.
 */
async function walkChain(db: Queryable, options: WalkOptions): Promise<WalkOutcome> {
  const outcome: WalkOutcome = { events: 0, last: null, checkpoint: null, problem: null };
  const checkpoints = streamCheckpoints(db, {
    fromSeq: options.start?.seq,
    toSeq: options.checkpointsToSeq ?? undefined,
  })[Symbol.asyncIterator]();
  const nextCheckpoint = async (): Promise<StoredCheckpoint | null> => {
    const next = await checkpoints.next();
    return next.done === true ? null : next.value;
  };
  const signatureProblem = async (
    checkpoint: StoredCheckpoint,
    id: string | null,
  ): Promise<VerifyFailure | null> => {
    const why = await checkCheckpointSignature(checkpoint, options.publicKey);
    return why === null
      ? null
      : {
          seq: checkpoint.seq,
          id,
          reason: 'checkpoint_signature_invalid',
          message: `Checkpoint at seq ${checkpoint.seq}: ${why}`,
        };
  };

  try {
    let pending = await nextCheckpoint();
    let expectedSeq = options.start?.seq ?? 1;
    // Starting from a checkpoint, the first event's stored prev_hash is taken as
    // given: its recomputed hash must still equal the signed head hash.
    let prevHash: string | null = options.start === null ? GENESIS_HASH : null;

    for await (const { record, occurredAtText } of streamStoredAuditEvents(db, {
      fromSeq: expectedSeq,
      toSeq: options.toSeq ?? undefined,
    })) {
      if (record.seq !== expectedSeq) {
        outcome.problem = {
          seq: expectedSeq,
          id: null,
          reason: 'seq_gap',
          message: `Event ${expectedSeq} is missing: the next stored event is ${record.seq}`,
        };
        return outcome;
      }
      if (prevHash !== null && record.prevHash !== prevHash) {
        outcome.problem = {
          seq: record.seq,
          id: record.id,
          reason: 'prev_hash_mismatch',
          message: `Event ${record.seq} does not link to event ${record.seq - 1}: its prev_hash is ${record.prevHash}, expected ${prevHash}`,
        };
        return outcome;
      }
      let computed: string;
      try {
        computed = computeEventHash(record.prevHash, {
          seq: record.seq,
          id: record.id,
          occurredAt: occurredAtText,
          type: record.type,
          code: record.code,
          actorKind: record.actorKind,
          actorId: record.actorId,
          subjectId: record.subjectId,
          sourceIp: record.sourceIp,
          outcome: record.outcome,
          data: record.data,
        });
      } catch (err) {
        computed = `(unhashable: ${err instanceof Error ? err.message : String(err)})`;
      }
      if (computed !== record.hash) {
        outcome.problem = {
          seq: record.seq,
          id: record.id,
          reason: 'hash_mismatch',
          message: `Event ${record.seq} was altered: its stored hash is ${record.hash}, its content hashes to ${computed}`,
        };
        return outcome;
      }
      // Only possible for a forged checkpoint below the first event (seq 0 or less).
      if (pending !== null && pending.seq < record.seq) {
        outcome.problem = (await signatureProblem(pending, null)) ?? {
          seq: pending.seq,
          id: null,
          reason: 'checkpoint_mismatch',
          message: `Checkpoint at seq ${pending.seq} names no event`,
        };
        return outcome;
      }
      while (pending !== null && pending.seq === record.seq) {
        const bad = await signatureProblem(pending, record.id);
        if (bad !== null) {
          outcome.problem = bad;
          return outcome;
        }
        if (pending.headHash !== computed) {
          outcome.problem = {
            seq: record.seq,
            id: record.id,
            reason: 'checkpoint_mismatch',
            message:
              `The chain up to event ${record.seq} was rewritten: the checkpoint signed at ${pending.createdAt} ` +
              `states head hash ${pending.headHash}, the stored chain gives ${computed}`,
          };
          return outcome;
        }
        outcome.checkpoint = { seq: pending.seq, createdAt: pending.createdAt };
        pending = await nextCheckpoint();
      }
      outcome.events += 1;
      outcome.last = { seq: record.seq, hash: record.hash };
      prevHash = record.hash;
      expectedSeq += 1;
    }

    if (pending !== null) {
      outcome.problem = (await signatureProblem(pending, null)) ?? {
        seq: expectedSeq,
        id: null,
        reason: 'truncated',
        message:
          `Events were removed from the end of the trail: the checkpoint signed at ${pending.createdAt} ` +
          `vouches for events up to ${pending.seq}, but the trail ends at ${expectedSeq - 1}`,
      };
    }
    return outcome;
  } finally {
    await checkpoints.return?.(undefined);
  }
}

/**
 * Verifies the whole audit trail: recomputes the hash chain from the genesis
 * (streaming, constant memory) and checks every checkpoint's signature and
 * head hash. Reports the first bad event.
 *
 * Bounded by the head and the latest checkpoint as they are when it starts,
 * so appends and checkpoints made meanwhile neither extend the work nor look
 * like truncation.
 */
export async function verifyAuditTrail(
  db: Queryable,
  options: { checkpointPublicKey: KeyObject },
): Promise<VerifyResult> {
  requireEd25519(options.checkpointPublicKey, 'public');
  // Latest checkpoint first: a checkpoint only ever names an event that was
  // already committed, so every checkpoint read here has its event in range.
  const latest = await latestCheckpoint(db);
  const head = await readAuditHead(db);
  const outcome = await walkChain(db, {
    publicKey: options.checkpointPublicKey,
    start: null,
    toSeq: head?.seq ?? 0,
    checkpointsToSeq: latest?.seq ?? null,
  });
  if (outcome.problem !== null) {
    return {
      ok: false,
      events: outcome.events,
      head,
      checkpoint: outcome.checkpoint,
      firstBad: outcome.problem,
    };
  }
  return { ok: true, events: outcome.events, head: outcome.last, checkpoint: outcome.checkpoint };
}

/**
 * Verifies only the events from `start` (a stored checkpoint) up to `toSeq`.
 * Used before signing a new checkpoint, so a signature never vouches for a chain
 * that does not extend the previously signed head.
 */
export async function verifyChainSince(
  db: Queryable,
  options: { publicKey: KeyObject; start: StoredCheckpoint | null; toSeq: number },
): Promise<VerifyFailure | null> {
  const outcome = await walkChain(db, {
    publicKey: options.publicKey,
    start: options.start,
    toSeq: options.toSeq,
    checkpointsToSeq: options.start?.seq ?? 0,
  });
  return outcome.problem;
}
