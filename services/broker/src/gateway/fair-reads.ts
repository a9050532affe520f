import type { Readable } from 'node:stream';

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
