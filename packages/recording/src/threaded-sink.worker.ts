/**
 * The recording writer thread (see ThreadedChunkSink): takes batches of sealed
 * chunks, whose memory was moved here, and inserts them with pgChunkSink over
 * a pool of its own. Answers each batch once committed, or with the error.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPool } from '@airlock/db';
import type { StoredChunk } from './chain.js';
import { isChunkKind } from './frames.js';
import { pgChunkSink } from './repository.js';

export interface WriterConfig {
  readonly connectionString: string;
  readonly maxConnections: number;
  readonly applicationName: string;
}

/** A chunk as it crosses to the thread: its bytes are a view of memory that was moved. */
export interface WriterRow extends Omit<StoredChunk, 'data'> {
  readonly data: { memory: ArrayBufferLike; offset: number; length: number };
}

export type WriterRequest = { type: 'write'; id: number; rows: WriterRow[] } | { type: 'close' };

export type WriterReply =
  { id: number; ok: true } | { id: number; ok: false; message: string; code?: string };

const port = parentPort;
if (port === null) throw new Error('the recording writer runs as a worker thread');
const config = workerData as WriterConfig;
const pool = createPool({
  connectionString: config.connectionString,
  max: config.maxConnections,
  applicationName: config.applicationName,
});
const sink = pgChunkSink(pool);

function chunkOf(row: WriterRow): StoredChunk {
  const kind: string = row.kind;
  if (!isChunkKind(kind)) throw new Error(`chunk ${row.seq} has unknown kind ${kind}`);
  return { ...row, data: Buffer.from(row.data.memory, row.data.offset, row.data.length) };
}

function failure(id: number, err: unknown): WriterReply {
  const code = (err as { code?: unknown } | null)?.code;
  return {
    id,
    ok: false,
    message: err instanceof Error ? err.message : String(err),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

port.on('message', (request: WriterRequest) => {
  if (request.type === 'close') {
    void pool.end().finally(() => port.close());
    return;
  }
  const { id } = request;
  let chunks: StoredChunk[];
  try {
    chunks = request.rows.map(chunkOf);
  } catch (err) {
    port.postMessage(failure(id, err));
    return;
  }
  sink.write(chunks).then(
    () => port.postMessage({ id, ok: true } satisfies WriterReply),
    (err: unknown) => port.postMessage(failure(id, err)),
  );
});
