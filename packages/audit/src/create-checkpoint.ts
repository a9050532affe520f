import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import type { Pool } from '@airlock/db';
import type { Clock } from '@airlock/domain';
import {
  latestCheckpoint,
  requireEd25519,
  signCheckpoint,
  type CheckpointStatement,
} from './checkpoint.js';
import { readAuditHead } from './repository.js';
import { verifyChainSince } from './verify.js';

/** The chain no longer extends the latest checkpoint: the trail has been tampered with. Alert on it. */
export class AuditChainBrokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditChainBrokenError';
  }
}

/**
 * Signs the current chain head and stores it as a checkpoint. Returns null when
 * there are no events or the head is already checkpointed (also when another
 * replica checkpointed the same head at the same moment).
 *
 * The events since the latest checkpoint are verified against it before
 * signing, so a checkpoint never vouches for a chain that does not extend the
 * previously signed one; otherwise this throws AuditChainBrokenError.
 *
 * It does not append an `audit.checkpoint_created` event: that event would move
 * the head past the checkpoint it reports, so the head would never be
 * checkpointed. The caller may log it, or audit it knowing that.
 */
export async function createAuditCheckpoint(
  pool: Pool,
  options: { privateKey: KeyObject; clock: Clock },
): Promise<{ seq: number; headHash: string } | null> {
  requireEd25519(options.privateKey, 'private');
  // Latest checkpoint before the head: a checkpoint read first names an event
  // that the later head read must include.
  const previous = await latestCheckpoint(pool);
  const head = await readAuditHead(pool);
  if (previous !== null && previous.seq >= (head?.seq ?? 0)) {
    if (previous.seq === head?.seq && previous.headHash === head.hash) return null;
    throw new AuditChainBrokenError(
      `Refusing to checkpoint: the trail ends at seq ${head?.seq ?? 0}, not after the latest checkpoint (seq ${previous.seq}, head hash ${previous.headHash})`,
    );
  }
  if (head === null) return null;

  const problem = await verifyChainSince(pool, {
    publicKey: createPublicKey(options.privateKey),
    start: previous,
    toSeq: head.seq,
  });
  if (problem !== null) {
    throw new AuditChainBrokenError(
      `Refusing to checkpoint: ${problem.reason} at seq ${problem.seq}: ${problem.message}`,
    );
  }

  const statement: CheckpointStatement = {
    seq: head.seq,
    headHash: head.hash,
    createdAt: options.clock.now().toISOString(),
  };
  const signature = await signCheckpoint(statement, options.privateKey);
  const { rowCount } = await pool.query(
    `insert into audit_checkpoints (seq, head_hash, created_at, signature) values ($1, $2, $3::timestamptz, $4)
     on conflict (seq) do nothing`,
    [statement.seq, statement.headHash, statement.createdAt, signature],
  );
  return rowCount === 1 ? { seq: statement.seq, headHash: statement.headHash } : null;
}
