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
