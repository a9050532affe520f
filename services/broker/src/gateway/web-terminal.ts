import { EventEmitter } from 'node:events';
import type { RawData, WebSocket } from 'ws';
import type { VendorChannel, VendorConnection } from './vendor-channel.js';

/** Frames the browser may have in flight before the pipeline is told to wait (backpressure). */
const HIGH_WATER_FRAMES = 64;

/**
 * Control messages of the console's terminal protocol (text frames, JSON);
 * terminal bytes travel as binary frames both ways.
 */
export type TerminalControl =
  | { readonly type: 'session'; readonly sessionId: string }
  | { readonly type: 'exit'; readonly code: number | null; readonly signal: string | null };

export function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** `{"type":"resize","cols":N,"rows":N}` from the browser, or null for anything else. */
export function parseResize(text: string): { cols: number; rows: number } | null {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof message !== 'object' || message === null) return null;
  const { type, cols, rows } = message as Record<string, unknown>;
  if (type !== 'resize' || !isTerminalSize(cols) || !isTerminalSize(rows)) return null;
  return { cols, rows };
}

function isTerminalSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 2 && n <= 1000;
}

/**
 * The browser terminal as the session pipeline sees it: one WebSocket is
 * both the vendor's connection and its single shell channel. Output waits
 * (the asset is paused) while the browser is behind, as with an SSH window.
 */
export class WebTerminalChannel extends EventEmitter implements VendorChannel, VendorConnection {
  /** A browser terminal has one stream: stderr is the terminal itself. */
  readonly stderr: VendorChannel['stderr'] = this;
  #inFlight = 0;
  #closed = false;
  #ended = false;

  constructor(
    private readonly socket: WebSocket,
    onResize: (cols: number, rows: number) => void,
  ) {
    super();
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        this.emit('data', rawToBuffer(data));
        return;
      }
      const size = parseResize(rawToBuffer(data).toString('utf8'));
      if (size !== null) onResize(size.cols, size.rows);
    });
    socket.on('error', () => socket.terminate());
    socket.once('close', () => {
      this.#closed = true;
      this.emit('end');
      this.emit('close');
    });
  }

  control(message: TerminalControl): void {
    if (this.#closed) return;
    this.socket.send(JSON.stringify(message));
  }

  write(data: Buffer): boolean {
    if (this.#closed) return false;
    this.#inFlight += 1;
    this.socket.send(data, { binary: true }, () => {
      this.#inFlight -= 1;
      if (this.#inFlight === HIGH_WATER_FRAMES / 2) this.emit('drain');
    });
    return this.#inFlight < HIGH_WATER_FRAMES;
  }

  exit(code: number): void;
  exit(signal: string, coreDumped: boolean, description: string): void;
  exit(codeOrSignal: number | string): void {
    this.control(
      typeof codeOrSignal === 'number'
        ? { type: 'exit', code: codeOrSignal, signal: null }
        : { type: 'exit', code: null, signal: codeOrSignal },
    );
  }

  /** What was sent is delivered before the close frame (ws queues it). */
  end(): void {
    this.close();
  }

  close(): void {
    this.#ended = true;
    if (this.#closed) return;
    this.socket.close(1000, 'session ended');
  }

  get writableEnded(): boolean {
    return this.#ended || this.#closed;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}
