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
  readonly stderr: { write(data: Buffer): boolean };
  exit(code: number): void;
  exit(signal: string, coreDumped: boolean, description: string): void;
  end(): unknown;
  close(): unknown;
  pause(): unknown;
  resume(): unknown;
  on(event: 'data', listener: (data: Buffer) => void): unknown;
  once(event: 'end' | 'close' | 'drain', listener: () => void): unknown;
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
}

/**
 * Passes the end of an asset's channel to the vendor's: exit status (or
 * signal), EOF, close — in the order OpenSSH's client needs. The asset may
 * send EOF before the exit status; passed on at once, it lets the client
 * (its own input already at EOF, as scp's and sftp's is when they finish)
 * close the channel before the status arrives, and it then reports exit
 * status -1: scp exits 1 though every byte was copied. So EOF waits for the
 * status, or for the asset's close when it sends none.
 */
export function relayChannelEnd(
  upstream: EndingChannel,
  channel: VendorChannel,
  onClosed: () => void = () => undefined,
): void {
  let exitSent = false;
  let eofPending = false;
  upstream.on('exit', (code, signal, coreDumped, description) => {
    if (code !== null && code !== undefined) channel.exit(code);
    else if (signal !== undefined) channel.exit(signal, coreDumped ?? false, description ?? '');
    exitSent = true;
    if (eofPending) channel.end();
  });
  upstream.once('end', () => {
    if (exitSent) channel.end();
    else eofPending = true;
  });
  upstream.once('close', () => {
    channel.end();
    channel.close();
    onClosed();
  });
}
