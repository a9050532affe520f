/**
 * The vendor's side of one carried channel, as the session pipeline uses it.
 * An ssh2 `ServerChannel` is one; the console's WebSocket terminal
 * (`web-terminal.ts`) is the other. Kept this narrow on purpose: whatever the
 * pipeline needs of the vendor's side must exist for every protocol, so that
 * recording, write-ahead command audit, rules, warnings and kills behave the
 * same whichever door the vendor came through.
 */
export interface VendorChannel {
  /** Returns false when the vendor is not keeping up; 'drain' follows. */
  write(data: Buffer): boolean;
  /** end() was called: its output is on its way out, nothing more may be written. */
  readonly writableEnded: boolean;
  /** Written to, and drained, on its own; it shares the SSH window with the channel. */
  readonly stderr: Drainable & {
    write(data: Buffer): boolean;
    readonly writableEnded?: boolean;
    /** Calls back once everything written has gone out (an SSH channel's stderr). */
    end?(callback: () => void): unknown;
    on?(event: 'error', listener: (err: Error) => void): unknown;
  };
  exit(code: number): void;
  exit(signal: string, coreDumped: boolean, description: string): void;
  end(): unknown;
  close(): unknown;
  pause(): unknown;
  resume(): unknown;
  on(event: 'data', listener: (data: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'end' | 'close' | 'drain', listener: () => void): unknown;
}

/**
 * Whether the pipeline may still write to the vendor's output (or stderr):
 * not once its end is under way. A write after end() would make ssh2 close
 * the channel at once, dropping the output still queued for the vendor.
 */
export function vendorWritable(channel: VendorChannel, stream: 'out' | 'err' = 'out'): boolean {
  if (channel.writableEnded) return false;
  return stream === 'out' || channel.stderr.writableEnded !== true;
}

/** The vendor's connection as a whole: what a session needs to end it. */
export interface VendorConnection {
  end(): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/** Something that says when it may be written to again. */
export interface Drainable {
  once(event: 'drain', listener: () => void): unknown;
}

/** The end of an asset's channel, as ssh2's ClientChannel reports it. */
export interface EndingChannel {
  on(
    event: 'exit',
    listener: (
      code: number | null,
      signal?: string,
      coreDumped?: boolean,
      description?: string,
    ) => void,
  ): unknown;
  once(event: 'end' | 'close', listener: () => void): unknown;
  readonly stderr: { once(event: 'end', listener: () => void): unknown };
}

export interface RelayEndOptions {
  /** Called when the asset's channel has closed. */
  readonly onClosed?: () => void;
  /** The splice carries the asset's stderr to the vendor's: the end waits for it too. */
  readonly stderr?: boolean;
}

/**
 * Passes the end of an asset's channel to the vendor's: exit status (or
 * signal), then EOF and close once every byte the asset sent has reached the
 * vendor — in the order OpenSSH's client needs.
 *
 * - The asset may send EOF before the exit status; passed on at once, it lets
 *   the client (its own input already at EOF, as scp's and sftp's is when they
 *   finish) close the channel before the status arrives, and it then reports
 *   exit status -1: scp exits 1 though every byte was copied. So EOF waits for
 *   the status, or for the asset's close when it sends none.
 * - The asset is often done long before the vendor has read everything: what
 *   the vendor's SSH window has not yet taken waits in the vendor channel's
 *   queue. So the vendor's channel is ended, never closed here: ssh2 sends EOF
 *   and CHANNEL_CLOSE itself once that queue is empty. Closing it at once
 *   dropped the tail of the output while the exit status said success.
 *   stderr shares the window and is flushed first.
 */
export function relayChannelEnd(
  upstream: EndingChannel,
  channel: VendorChannel,
  options: RelayEndOptions = {},
): void {
  let statusKnown = false;
  let outputEnded = false;
  let stderrEnded = options.stderr !== true;
  let ending = false;
  const endWhenDone = (): void => {
    if (ending || !statusKnown || !outputEnded || !stderrEnded) return;
    ending = true;
    const { stderr } = channel;
    if (options.stderr === true && stderr.end !== undefined) stderr.end(() => channel.end());
    else channel.end();
  };
  upstream.on('exit', (code, signal, coreDumped, description) => {
    if (code !== null && code !== undefined) channel.exit(code);
    else if (signal !== undefined) channel.exit(signal, coreDumped ?? false, description ?? '');
    statusKnown = true;
    endWhenDone();
  });
  upstream.once('end', () => {
    outputEnded = true;
    endWhenDone();
  });
  if (options.stderr === true)
    upstream.stderr.once('end', () => {
      stderrEnded = true;
      endWhenDone();
    });
  upstream.once('close', () => {
    statusKnown = true;
    outputEnded = true;
    endWhenDone();
    options.onClosed?.();
  });
}
