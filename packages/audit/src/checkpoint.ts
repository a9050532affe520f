import type { KeyObject } from 'node:crypto';
import type { Queryable } from '@airlock/db';
import { CompactSign, compactVerify } from 'jose';
import { canonicalJson } from './canonical-json.js';

/** JWS `typ` of a checkpoint (RFC 7515 §4.1.9), so that no other token signed with the same key can pass as one. */
export const CHECKPOINT_JWS_TYPE = 'airlock-audit-checkpoint+jws';
/** Pinned: a checkpoint in any other algorithm is invalid, whatever its key (RFC 8725 §3.1). */
const CHECKPOINT_ALGORITHM = 'EdDSA';

export interface CheckpointStatement {
  seq: number;
  headHash: string;
  /** ISO 8601 with milliseconds. */
  createdAt: string;
}

export interface StoredCheckpoint extends CheckpointStatement {
  signature: string;
}

export function requireEd25519(key: KeyObject, type: 'private' | 'public'): void {
  if (key.type !== type || key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`The audit checkpoint key must be an Ed25519 ${type} key`);
  }
}

export async function signCheckpoint(
  statement: CheckpointStatement,
  privateKey: KeyObject,
): Promise<string> {
  requireEd25519(privateKey, 'private');
  const payload = new TextEncoder().encode(
    canonicalJson({
      seq: statement.seq,
      headHash: statement.headHash,
      createdAt: statement.createdAt,
    }),
  );
  return new CompactSign(payload)
    .setProtectedHeader({ alg: CHECKPOINT_ALGORITHM, typ: CHECKPOINT_JWS_TYPE })
    .sign(privateKey);
}

/**
 * Checks that `checkpoint.signature` is a checkpoint JWS from the holder of the
 * private key and that it states exactly the stored seq, headHash and
 * createdAt — a valid signature lifted from another checkpoint row must not
 * vouch for this one. Returns null when valid, otherwise why not.
 */
export async function checkCheckpointSignature(
  checkpoint: StoredCheckpoint,
  publicKey: KeyObject,
): Promise<string | null> {
  let verified: Awaited<ReturnType<typeof compactVerify>>;
  try {
    verified = await compactVerify(checkpoint.signature, publicKey, {
      algorithms: [CHECKPOINT_ALGORITHM],
    });
  } catch (err) {
    return `the signature does not verify with the checkpoint public key (${err instanceof Error ? err.message : String(err)})`;
  }
  if (verified.protectedHeader.typ !== CHECKPOINT_JWS_TYPE)
    return `the JWS is not a checkpoint (typ ${String(verified.protectedHeader.typ)})`;
  let signed: unknown;
  try {
    signed = JSON.parse(new TextDecoder().decode(verified.payload));
  } catch {
    return 'the signed payload is not JSON';
  }
  const s = signed as Partial<CheckpointStatement> | null;
  if (
    s?.seq !== checkpoint.seq ||
    s.headHash !== checkpoint.headHash ||
    s.createdAt !== checkpoint.createdAt
  ) {
    return `the signed statement (${JSON.stringify(signed)}) differs from the stored checkpoint`;
  }
  return null;
}

interface CheckpointRow {
  seq_text: string;
  head_hash: string;
  created_at: Date;
  signature: string;
}

function fromRow(row: CheckpointRow): StoredCheckpoint {
  return {
    seq: Number(row.seq_text),
    headHash: row.head_hash,
    createdAt: row.created_at.toISOString(),
    signature: row.signature,
  };
}

const SELECT_CHECKPOINT =
  'select seq::text as seq_text, head_hash, created_at, signature from audit_checkpoints';

/** Checkpoints in seq order, fetched in batches. */
export async function* streamCheckpoints(
  db: Queryable,
  options: {
    fromSeq?: number | undefined;
    toSeq?: number | undefined;
    batchSize?: number | undefined;
  } = {},
): AsyncGenerator<StoredCheckpoint> {
  const batchSize = options.batchSize ?? 500;
  let after = (options.fromSeq ?? Number.MIN_SAFE_INTEGER + 1) - 1;
  const toSeq = options.toSeq ?? Number.MAX_SAFE_INTEGER;
  for (;;) {
    const { rows } = await db.query<CheckpointRow>(
      `${SELECT_CHECKPOINT} where seq > $1 and seq <= $2 order by seq limit $3`,
      [after, toSeq, batchSize],
    );
    for (const row of rows) {
      const checkpoint = fromRow(row);
      after = checkpoint.seq;
      yield checkpoint;
    }
    if (rows.length < batchSize) return;
  }
}

export async function latestCheckpoint(db: Queryable): Promise<StoredCheckpoint | null> {
  const { rows } = await db.query<CheckpointRow>(`${SELECT_CHECKPOINT} order by seq desc limit 1`);
  return rows[0] === undefined ? null : fromRow(rows[0]);
}
