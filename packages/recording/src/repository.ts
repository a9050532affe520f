import { withTransaction, type Pool, type Queryable } from '@airlock/db';
import type { StoredChunk } from './chain.js';
import { isChunkKind } from './frames.js';

/**
 * Where a recorder puts its sealed chunks. `write` resolves only once the
 * chunks are durable (committed), because the gateway relies on it for
 * write-ahead audit: a command is forwarded only after flush() resolves.
 * Calls are never concurrent for one recorder and always carry chunks in seq
 * order.
 *
 * Ownership: the chunks' bytes are the sink's once write() is called. The
 * recorder never reads a chunk's data afterwards, and each chunk's data is the
 * only view of its memory (never a slice of Node's shared Buffer pool), so a
 * sink may move that memory to another thread (ThreadedChunkSink does).
 */
export interface ChunkSink {
  write(chunks: readonly StoredChunk[]): Promise<void>;
}

/**
 * PostgreSQL allows 65,535 bind parameters per statement. A recorder's writes
 * stay far below this; a larger call is split into several INSERTs in one
 * transaction, so it still lands all-or-nothing.
 */
const MAX_ROWS_PER_INSERT = 4_096;

function insertStatement(chunks: readonly StoredChunk[]): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const rows: string[] = [];
  for (const c of chunks) {
    const p = values.length;
    rows.push(
      `($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6}, $${p + 7}, $${p + 8})`,
    );
    // A Buffer parameter goes over the wire as binary, so bytea costs no hex encoding on the way in.
    values.push(c.sessionId, c.seq, c.channel, c.kind, c.offsetMs, c.data, c.prevHash, c.hash);
  }
  return {
    text: `insert into session_chunks (session_id, seq, channel, kind, offset_ms, data, prev_hash, hash) values ${rows.join(', ')}`,
    values,
  };
}

/**
 * Writes each call's chunks with one multi-row INSERT. Outside a transaction
 * the INSERT commits on its own, and with PostgreSQL's default
 * synchronous_commit the commit is flushed to the WAL before the query
 * returns — which is what makes the chunks durable when write() resolves.
 */
export function pgChunkSink(pool: Pool): ChunkSink {
  return {
    async write(chunks) {
      if (chunks.length === 0) return;
      if (chunks.length <= MAX_ROWS_PER_INSERT) {
        const { text, values } = insertStatement(chunks);
        await pool.query(text, values);
        return;
      }
      await withTransaction(pool, async (client) => {
        for (let i = 0; i < chunks.length; i += MAX_ROWS_PER_INSERT) {
          const { text, values } = insertStatement(chunks.slice(i, i + MAX_ROWS_PER_INSERT));
          await client.query(text, values);
        }
      });
    },
  };
}

interface ChunkRow {
  session_id: string;
  seq: number;
  channel: number;
  kind: string;
  offset_ms: number;
  data: Buffer;
  prev_hash: string;
  hash: string;
}

function chunkOf(row: ChunkRow): StoredChunk {
  // The column has a check constraint; this guards the type, not the data.
  if (!isChunkKind(row.kind))
    throw new Error(`session_chunks row ${row.seq} has unknown kind ${row.kind}`);
  return {
    sessionId: row.session_id,
    seq: row.seq,
    channel: row.channel,
    kind: row.kind,
    offsetMs: row.offset_ms,
    data: row.data,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** Where a recording's chain ends: its number of chunks and the last one's hash (null: none). */
export interface RecordingExtent {
  readonly chunks: number;
  readonly head: string | null;
}

/**
 * What a recording that could not be completed is sealed with. Its last
 * write failed, but a write can commit and its answer still be lost (the
 * writer thread died, the link dropped after COMMIT): sealing only what the
 * recorder heard back would fall short of the stored chunks, which reads as
 * tampering. So the store is read back, and its extent sealed when it is one
 * the recorder wrote — what it knows is durable, or that plus the unanswered
 * write. Anything else is not the recorder's doing: the recorder's own extent
 * is sealed, `storedDiffers` says so, and verification will show where.
 */
export async function extentToSeal(
  db: Queryable,
  sessionId: string,
  recorder: {
    readonly durable: RecordingExtent;
    readonly unanswered: { chunks: number; head: string } | null;
  },
): Promise<RecordingExtent & { storedDiffers: boolean }> {
  const { rows } = await db.query<{ seq: number; hash: string }>(
    `select seq, hash from session_chunks where session_id = $1 order by seq desc limit 1`,
    [sessionId],
  );
  const stored: RecordingExtent =
    rows[0] === undefined ? { chunks: 0, head: null } : { chunks: rows[0].seq, head: rows[0].hash };
  const same = (known: RecordingExtent | null): boolean =>
    known !== null && known.chunks === stored.chunks && known.head === stored.head;
  if (same(recorder.durable) || same(recorder.unanswered))
    return { ...stored, storedDiffers: false };
  return { ...recorder.durable, storedDiffers: true };
}

export const DEFAULT_CHUNK_BATCH_SIZE = 128;

/**
 * A session's chunks in seq order, read in pages (keyset on seq), so replaying
 * or verifying an hours-long session holds only one page in memory. Works on a
 * pool or on a client inside a transaction (for a consistent snapshot).
 */
export async function* streamSessionChunks(
  db: Queryable,
  sessionId: string,
  options: { batchSize?: number } = {},
): AsyncGenerator<StoredChunk> {
  const batchSize = options.batchSize ?? DEFAULT_CHUNK_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`batchSize must be a positive integer, not ${batchSize}`);
  let afterSeq = 0;
  for (;;) {
    const page = await db.query<ChunkRow>(
      `select session_id, seq, channel, kind, offset_ms, data, prev_hash, hash
         from session_chunks
        where session_id = $1 and seq > $2
        order by seq
        limit $3`,
      [sessionId, afterSeq, batchSize],
    );
    for (const row of page.rows) yield chunkOf(row);
    const last = page.rows.at(-1);
    if (last === undefined || page.rows.length < batchSize) return;
    afterSeq = last.seq;
  }
}
