/**
 * Interactive first.
 *
 * A keystroke's echo crosses the vendor's ssh, the gateway, the connector,
 * the asset's sshd and back: several processes, each of which must get a CPU
 * at once. A bulk transfer running flat out keeps every one of them busy (it
 * encrypts, records and relays every byte at each hop), and on a small broker
 * or connector box the echo then waits its turn at every hop — tens of
 * milliseconds at p99, whatever the event loop does. Fair reads and per-stream
 * flow control keep one session from blocking another; they cannot give back
 * CPU the transfer is using.
 *
 * So while someone is typing — an interactive channel (a shell with a
 * terminal) had input within INTERACTIVE_WINDOW_MS — the gateway's bulk
 * channels (exec, SFTP/scp, forwarded ports) share a configured rate between
 * them (a token bucket with a small burst). The rest of the time they run
 * unpaced. Interactive channels are never paced. Pacing holds bytes; it never
 * drops them: a held channel stops reading and SSH's windows and TCP slow the
 * sender, so the whole pipeline idles instead of just the gateway.
 */

/** How long after a keystroke its session still counts as interactive. */
export const INTERACTIVE_WINDOW_MS = 10_000;
/** What bulk channels may pass at once before pacing holds them. */
export const BULK_BURST_BYTES = 256 * 1024;
/**
 * The most the bucket may owe. Every bulk channel draws on it after each
 * piece it passed, so many channels (or one that slipped its hold) could run
 * up a debt that would then hold every bulk channel for minutes after the
 * typing stopped. Bounded, a hold lasts at most this much at the rate.
 */
export const BULK_MAX_DEBT_BYTES = 4 * BULK_BURST_BYTES;

export interface BulkPacerOptions {
  /** Bytes per second the bulk channels share while someone types; 0: never paced. */
  readonly bytesPerSecond: number;
  /** Monotonic milliseconds. */
  readonly now?: () => number;
}

export class BulkPacer {
  readonly bytesPerSecond: number;
  readonly #now: () => number;
  #lastKeystrokeAt = Number.NEGATIVE_INFINITY;
  #tokens = BULK_BURST_BYTES;
  #refilledAt = 0;

  constructor(options: BulkPacerOptions) {
    if (!Number.isFinite(options.bytesPerSecond) || options.bytesPerSecond < 0)
      throw new RangeError(`bytesPerSecond must be 0 or more (got ${options.bytesPerSecond})`);
    this.bytesPerSecond = options.bytesPerSecond;
    this.#now = options.now ?? (() => performance.now());
  }

  /** An interactive channel had input (a keystroke, a paste). */
  noteKeystroke(): void {
    this.#lastKeystrokeAt = this.#now();
  }

  /** Whether bulk channels are paced now. */
  get pacing(): boolean {
    return this.bytesPerSecond > 0 && this.#now() - this.#lastKeystrokeAt <= INTERACTIVE_WINDOW_MS;
  }

  /**
   * A bulk channel passed `bytes`: how long it must now wait before passing
   * more, in ms (0: not at all). Every bulk channel draws on the one bucket,
   * so together they stay at the rate, and each waits for its own deficit.
   */
  delayAfter(bytes: number): number {
    const now = this.#now();
    if (!this.pacing) {
      this.#tokens = BULK_BURST_BYTES;
      this.#refilledAt = now;
      return 0;
    }
    const elapsedMs = Math.max(0, now - this.#refilledAt);
    this.#tokens = Math.min(
      BULK_BURST_BYTES,
      this.#tokens + (elapsedMs / 1000) * this.bytesPerSecond,
    );
    this.#refilledAt = now;
    this.#tokens = Math.max(this.#tokens - bytes, -BULK_MAX_DEBT_BYTES);
    if (this.#tokens >= 0) return 0;
    return Math.ceil((-this.#tokens / this.bytesPerSecond) * 1000);
  }
}
