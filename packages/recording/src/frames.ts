/**
 * The byte layout of one stored chunk: the frames (events) of one channel and
 * kind, coalesced so that a busy terminal costs one row per tens of
 * milliseconds instead of one per SSH packet. Pure: no I/O.
 *
 *   frame = u32 BE (offset - chunk offset, ms) · u32 BE (length) · length bytes
 *
 * Deltas rather than absolute offsets keep the header fixed-size; a chunk lives
 * for milliseconds, so a u32 of milliseconds (49 days) never overflows.
 */

/**
 * o: output to the vendor, i: input from the vendor, r: terminal resize
 * ("COLSxROWS" as UTF-8), m: marker (a notice shown to the vendor, such as an
 * expiry warning). The same letters asciicast v2 uses for its event codes.
 */
export type ChunkKind = 'o' | 'i' | 'r' | 'm';

export const CHUNK_KINDS: readonly ChunkKind[] = Object.freeze(['o', 'i', 'r', 'm']);

export function isChunkKind(value: unknown): value is ChunkKind {
  return value === 'o' || value === 'i' || value === 'r' || value === 'm';
}

/** One event: its time since the session started, and its bytes. */
export interface RecordedFrame {
  offsetMs: number;
  data: Buffer;
}

export const FRAME_HEADER_BYTES = 8;
const U32_MAX = 0xffff_ffff;

/** Thrown when stored chunk data does not parse as a sequence of frames. */
export class MalformedRecordingError extends Error {
  /** Byte position in the chunk data where parsing failed. */
  readonly position: number;

  constructor(position: number, problem: string) {
    super(`Malformed recording data at byte ${position}: ${problem}`);
    this.name = 'MalformedRecordingError';
    this.position = position;
  }
}

/** Writes one frame header at `at`; the caller has checked both values fit a u32. */
export function writeFrameHeader(
  target: Buffer,
  at: number,
  deltaMs: number,
  length: number,
): void {
  target.writeUInt32BE(deltaMs, at);
  target.writeUInt32BE(length, at + 4);
}

/** The delta of `offsetMs` from `baseOffsetMs`, refused unless it is a u32 number of milliseconds. */
export function frameDelta(offsetMs: number, baseOffsetMs: number): number {
  const delta = offsetMs - baseOffsetMs;
  if (!Number.isInteger(delta) || delta < 0 || delta > U32_MAX) {
    throw new RangeError(
      `A frame at ${offsetMs} ms cannot be stored in a chunk starting at ${baseOffsetMs} ms: ` +
        'frames must not precede their chunk and must lie within 2^32 ms of it',
    );
  }
  return delta;
}

export function encodeFrames(frames: readonly RecordedFrame[], baseOffsetMs: number): Buffer {
  let total = 0;
  for (const frame of frames) {
    if (frame.data.length > U32_MAX) throw new RangeError('A frame may hold at most 2^32-1 bytes');
    total += FRAME_HEADER_BYTES + frame.data.length;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const frame of frames) {
    writeFrameHeader(out, at, frameDelta(frame.offsetMs, baseOffsetMs), frame.data.length);
    at += FRAME_HEADER_BYTES;
    at += frame.data.copy(out, at);
  }
  return out;
}

/**
 * Parses chunk data back into frames. The frames' data are views into `data`
 * (no copy). Throws MalformedRecordingError on a truncated header or a length
 * running past the end, so a damaged chunk is never silently read as shorter.
 */
export function decodeFrames(data: Buffer, baseOffsetMs: number): RecordedFrame[] {
  if (!Number.isSafeInteger(baseOffsetMs)) {
    throw new MalformedRecordingError(0, `the chunk offset ${baseOffsetMs} is not an integer`);
  }
  const frames: RecordedFrame[] = [];
  let at = 0;
  while (at < data.length) {
    if (data.length - at < FRAME_HEADER_BYTES) {
      throw new MalformedRecordingError(
        at,
        `${data.length - at} bytes left, a frame header needs ${FRAME_HEADER_BYTES}`,
      );
    }
    const delta = data.readUInt32BE(at);
    const length = data.readUInt32BE(at + 4);
    const start = at + FRAME_HEADER_BYTES;
    if (length > data.length - start) {
      throw new MalformedRecordingError(
        at,
        `the frame claims ${length} bytes but only ${data.length - start} remain`,
      );
    }
    frames.push({ offsetMs: baseOffsetMs + delta, data: data.subarray(start, start + length) });
    at = start + length;
  }
  return frames;
}
