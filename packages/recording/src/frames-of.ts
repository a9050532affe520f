import type { StoredChunk } from './chain.js';
import { decodeFrames, type ChunkKind, type RecordedFrame } from './frames.js';

/**
 * The frames of one channel and kind, in recording order (chunks of one
 * channel and kind hold consecutive, ordered frames). Collects into memory:
 * for tests and for indexing bounded pieces, not for replaying whole sessions.
 */
export async function collectFrames(
  chunks: AsyncIterable<StoredChunk> | Iterable<StoredChunk>,
  select: { channel: number; kind: ChunkKind },
): Promise<RecordedFrame[]> {
  const frames: RecordedFrame[] = [];
  for await (const chunk of chunks) {
    if (chunk.channel === select.channel && chunk.kind === select.kind)
      frames.push(...decodeFrames(chunk.data, chunk.offsetMs));
  }
  return frames;
}
