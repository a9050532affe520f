/**
 * Export to asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), the
 * format `asciinema play` and asciinema-player replay: a JSON header line, then
 * one JSON array per event, `[seconds, code, data]`. Pure: fed chunks, yields
 * text.
 */
import type { StoredChunk } from './chain.js';
import { decodeFrames, type ChunkKind } from './frames.js';

export interface AsciicastHeaderInfo {
  width: number;
  height: number;
  startedAt: Date;
  title?: string;
  /** The vendor's TERM, e.g. xterm-256color. */
  term?: string;
  shell?: string;
}

function dimension(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65_535)
    throw new RangeError(`asciicast ${name} must be an integer in [1, 65535], not ${value}`);
  return value;
}

/** The header line, newline included. */
export function asciicastHeader(info: AsciicastHeaderInfo): string {
  const startMs = info.startedAt.getTime();
  if (!Number.isFinite(startMs)) throw new TypeError('startedAt must be a valid Date');
  const env: Record<string, string> = {};
  if (info.term !== undefined) env.TERM = info.term;
  if (info.shell !== undefined) env.SHELL = info.shell;
  return `${JSON.stringify({
    version: 2,
    width: dimension('width', info.width),
    height: dimension('height', info.height),
    timestamp: Math.floor(startMs / 1000),
    ...(info.title === undefined ? {} : { title: info.title }),
    ...(Object.keys(env).length === 0 ? {} : { env }),
  })}\n`;
}

export interface AsciicastOptions {
  channel: number;
  /** Input is what the vendor typed — passwords typed at a prompt among it — so it is left out unless asked for. */
  includeInput?: boolean;
  header: AsciicastHeaderInfo;
}

interface PendingFrame {
  offsetMs: number;
  seq: number;
  data: Buffer;
}

/** Frames of one kind, in order; consumed from the front. */
class FrameQueue {
  #items: PendingFrame[] = [];
  #start = 0;

  push(frame: PendingFrame): void {
    this.#items.push(frame);
  }

  peek(): PendingFrame | undefined {
    return this.#items[this.#start];
  }

  shift(): void {
    this.#start += 1;
    // Compact now and then so a long replay does not keep every frame alive.
    if (this.#start >= 1024 && this.#start * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#start);
      this.#start = 0;
    }
  }
}

function before(a: PendingFrame, b: PendingFrame): boolean {
  return a.offsetMs < b.offsetMs || (a.offsetMs === b.offsetMs && a.seq < b.seq);
}

function eventLine(offsetMs: number, code: ChunkKind, text: string): string {
  return `[${(offsetMs / 1000).toFixed(6)}, ${JSON.stringify(code)}, ${JSON.stringify(text)}]\n`;
}

/**
 * The asciicast v2 lines of one channel of a recording: the header, then its
 * events in time order (by frame offset, ties by chunk seq).
 *
 * Single pass with bounded memory: chunks arrive in seq order, and the recorder
 * seals a channel's chunks in the order they opened, so a chunk's offset is a
 * lower bound for every frame still to come on that channel — everything
 * buffered up to it can be written out. Within one kind the frames are already
 * in order, so the merge is over at most four queues. Event times never go
 * backwards in the output even if stored offsets did.
 *
 * Output and input bytes pass through one streaming UTF-8 decoder per kind, so
 * a character split across frames (or chunks) is decoded whole; invalid bytes
 * become U+FFFD, as a terminal would show them. A resize ("COLSxROWS") or
 * marker is one frame and is decoded on its own.
 */
export async function* asciicastLines(
  chunks: AsyncIterable<StoredChunk> | Iterable<StoredChunk>,
  options: AsciicastOptions,
): AsyncGenerator<string> {
  yield asciicastHeader(options.header);
  const includeInput = options.includeInput ?? false;
  const queues = new Map<ChunkKind, FrameQueue>();
  const decoders = {
    o: new TextDecoder('utf-8'),
    i: new TextDecoder('utf-8'),
  };
  let lastMs = 0;

  function* emitUpTo(limitMs: number): Generator<string> {
    for (;;) {
      let bestKind: ChunkKind | null = null;
      let best: PendingFrame | undefined;
      for (const [kind, queue] of queues) {
        const head = queue.peek();
        if (head !== undefined && (best === undefined || before(head, best))) {
          best = head;
          bestKind = kind;
        }
      }
      if (best === undefined || bestKind === null || best.offsetMs > limitMs) return;
      queues.get(bestKind)?.shift();
      const text =
        bestKind === 'o' || bestKind === 'i'
          ? decoders[bestKind].decode(best.data, { stream: true })
          : best.data.toString('utf8');
      // A frame holding only the first bytes of a character yields nothing yet.
      if (text === '' && (bestKind === 'o' || bestKind === 'i')) continue;
      lastMs = Math.max(lastMs, best.offsetMs);
      yield eventLine(lastMs, bestKind, text);
    }
  }

  for await (const chunk of chunks) {
    if (chunk.channel !== options.channel) continue;
    if (chunk.kind === 'i' && !includeInput) continue;
    const frames = decodeFrames(chunk.data, chunk.offsetMs);
    yield* emitUpTo(chunk.offsetMs);
    let queue = queues.get(chunk.kind);
    if (queue === undefined) {
      queue = new FrameQueue();
      queues.set(chunk.kind, queue);
    }
    for (const frame of frames)
      queue.push({ offsetMs: frame.offsetMs, seq: chunk.seq, data: frame.data });
  }
  yield* emitUpTo(Number.POSITIVE_INFINITY);
  // Bytes of a character cut off by the end of the session.
  for (const kind of ['o', 'i'] as const) {
    const rest = decoders[kind].decode();
    if (rest !== '') yield eventLine(lastMs, kind, rest);
  }
}
