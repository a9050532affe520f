/**
 * BulkPacer on its own, on a manual clock: when it paces, at what rate, and
 * when it lets go (the gateway tests show it holding a real transfer).
 */
import { describe, expect, it } from 'vitest';
import {
  BULK_BURST_BYTES,
  BULK_MAX_DEBT_BYTES,
  BulkPacer,
  INTERACTIVE_WINDOW_MS,
} from './pacing.js';

const MiB = 1024 * 1024;

function pacerAt(bytesPerSecond: number): { pacer: BulkPacer; advance: (ms: number) => void } {
  let now = 1_000;
  const pacer = new BulkPacer({ bytesPerSecond, now: () => now });
  return { pacer, advance: (ms) => void (now += ms) };
}

/** Passes `total` bytes in 32 KiB packets, waiting as told: how long that took, ms. */
function transfer(
  pacer: BulkPacer,
  advance: (ms: number) => void,
  total: number,
  beforeEach: () => void = () => undefined,
): number {
  let elapsed = 0;
  for (let sent = 0; sent < total; sent += 32 * 1024) {
    beforeEach();
    const wait = pacer.delayAfter(32 * 1024);
    advance(wait);
    elapsed += wait;
  }
  return elapsed;
}

describe('BulkPacer', () => {
  it('never holds bulk channels while nobody types', () => {
    const { pacer, advance } = pacerAt(16 * MiB);
    expect(pacer.pacing).toBe(false);
    expect(transfer(pacer, advance, 256 * MiB)).toBe(0);
  });

  it('holds them to the configured rate while someone types, after a small burst', () => {
    const { pacer, advance } = pacerAt(16 * MiB);
    pacer.noteKeystroke();
    expect(pacer.pacing).toBe(true);
    expect(transfer(pacer, advance, BULK_BURST_BYTES)).toBe(0);
    // Typing goes on (a key every packet): 32 MiB more take two seconds at 16 MiB/s.
    const ms = transfer(pacer, advance, 32 * MiB, () => pacer.noteKeystroke());
    expect(ms).toBeGreaterThanOrEqual(1_990);
    expect(ms).toBeLessThanOrEqual(2_100);
  });

  it('shares the rate between bulk channels: two transfers together take as long as one of both sizes', () => {
    const { pacer, advance } = pacerAt(8 * MiB);
    pacer.noteKeystroke();
    transfer(pacer, advance, BULK_BURST_BYTES);
    let elapsed = 0;
    for (let sent = 0; sent < 8 * MiB; sent += 32 * 1024) {
      // Two channels, a packet each, then the longer of their waits passes.
      const a = pacer.delayAfter(32 * 1024);
      const b = pacer.delayAfter(32 * 1024);
      const wait = Math.max(a, b);
      advance(wait);
      elapsed += wait;
      pacer.noteKeystroke();
    }
    expect(elapsed).toBeGreaterThanOrEqual(1_990);
    expect(elapsed).toBeLessThanOrEqual(2_100);
  });

  it('owes at most BULK_MAX_DEBT_BYTES: many channels drawing at once never hold for minutes', () => {
    const { pacer } = pacerAt(1 * MiB);
    pacer.noteKeystroke();
    // 64 channels each pass a 2 MiB window in the same instant.
    let longest = 0;
    for (let channel = 0; channel < 64; channel += 1)
      longest = Math.max(longest, pacer.delayAfter(2 * MiB));
    expect(longest).toBe(Math.ceil((BULK_MAX_DEBT_BYTES / MiB) * 1000));
  });

  it(`lets go ${INTERACTIVE_WINDOW_MS / 1000} s after the last keystroke, with a fresh burst`, () => {
    const { pacer, advance } = pacerAt(1 * MiB);
    pacer.noteKeystroke();
    expect(transfer(pacer, advance, 2 * MiB)).toBeGreaterThan(1_500);
    advance(INTERACTIVE_WINDOW_MS + 1);
    expect(pacer.pacing).toBe(false);
    expect(transfer(pacer, advance, 64 * MiB)).toBe(0);
    pacer.noteKeystroke();
    expect(transfer(pacer, advance, BULK_BURST_BYTES)).toBe(0);
    expect(pacer.delayAfter(32 * 1024)).toBeGreaterThan(0);
  });

  it('is off at 0 and refuses a negative or non-finite rate', () => {
    const { pacer, advance } = pacerAt(0);
    pacer.noteKeystroke();
    expect(pacer.pacing).toBe(false);
    expect(transfer(pacer, advance, 64 * MiB)).toBe(0);
    expect(() => new BulkPacer({ bytesPerSecond: -1 })).toThrow(RangeError);
    expect(() => new BulkPacer({ bytesPerSecond: Number.NaN })).toThrow(RangeError);
  });
});
