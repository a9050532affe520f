import type { Readable } from 'node:stream';
import type { Drainable } from './vendor-channel.js';

/** What one socket may hand the event loop per turn before it lets the others in. */
export const READ_BUDGET_PER_TURN = 64 * 1024;

/**
 * Makes a busy socket share the event loop. libuv reads a readable socket up
 * to 32 times per turn (64 KiB each), and ssh2 decrypts and relays all of it
 * at once: one session pulling a file would hold the loop for milliseconds
 * per turn, and every other session's keystrokes would wait behind it
 * (head-of-line blocking across sessions). After READ_BUDGET_PER_TURN bytes
 * the socket pauses until the next turn (setImmediate runs after the turn's
 * I/O), so each socket gets its share in round-robin. Nothing is dropped or
 * reordered: a paused socket simply stops reading, and TCP flow control
 * slows the sender.
 */
export function shareEventLoop(socket: Readable, budget = READ_BUDGET_PER_TURN): void {
  let used = 0;
  let yielding = false;
  const resume = (): void => {
    used = 0;
    yielding = false;
    if (!socket.destroyed) socket.resume();
  };
  socket.on('data', (data: Buffer) => {
    used += data.length;
    if (used < budget || yielding) return;
    yielding = true;
    socket.pause();
    setImmediate(resume);
  });
}

/** A stream a session pipeline may hold back. */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/**
 * One carried channel's flow through a session's pipeline: held while the
 * recorder or the vendor's side is full (backpressure), and for the rest of
 * the turn after each share of the event loop (the budget shareEventLoop gives
 * sockets). The share matters after a hold: a paused ssh2 channel keeps what
 * arrives meanwhile, up to its whole window (2 MiB), and resume() emits all of
 * it at once — a bulk transfer's drain would hold the loop for tens of
 * milliseconds while other sessions' keystrokes wait. The source resumes only
 * when nothing holds it and `mayFlow` still agrees.
 */
export class ChannelFlow {
  #holds = 0;
  #used = 0;
  #yielding = false;

  constructor(
    private readonly source: Pausable,
    private readonly mayFlow: () => boolean,
    private readonly budget = READ_BUDGET_PER_TURN,
  ) {}

  /**
   * After each piece the source emitted and the pipeline took: holds it as
   * needed — until each of `waitFor` drains, for `holdMs` (pacing), and to the
   * next turn once its share is spent.
   */
  passed(bytes: number, waitFor: readonly Drainable[], holdMs = 0): void {
    this.#used += bytes;
    const shareSpent = !this.#yielding && this.#used >= this.budget;
    if (!shareSpent && waitFor.length === 0 && holdMs <= 0) return;
    this.source.pause();
    if (holdMs > 0) {
      this.#holds += 1;
      setTimeout(() => {
        this.#holds -= 1;
        this.#open();
      }, holdMs);
    }
    if (shareSpent) {
      this.#yielding = true;
      setImmediate(() => {
        this.#used = 0;
        this.#yielding = false;
        this.#open();
      });
    }
    for (const full of waitFor) {
      this.#holds += 1;
      full.once('drain', () => {
        this.#holds -= 1;
        this.#open();
      });
    }
  }

  #open(): void {
    if (this.#holds === 0 && !this.#yielding && this.mayFlow()) this.source.resume();
  }
}
