import { FILEXFER_ATTR } from './constants.js';
import { renderSftpString } from './text.js';

/** A field ran past the end of its packet: the stream cannot be trusted. */
export class MalformedPacketError extends Error {
  override readonly name = 'MalformedPacketError';
}

/** ATTRS (§5), as far as a record needs them. */
export interface SftpAttributes {
  /** uint64; exact below 2^53. */
  size?: number;
  uid?: number;
  gid?: number;
  /** POSIX mode bits, e.g. 0o100644. */
  permissions?: number;
  /** Seconds since the epoch. */
  atime?: number;
  mtime?: number;
  extended?: { type: string; data: string }[];
}

/**
 * Reads the data types of §3 (uint32, uint64, string) from one packet body,
 * throwing MalformedPacketError rather than reading past its end — the same
 * place where OpenSSH's sftp-server gives up on a message.
 */
export class PacketReader {
  #at: number;

  constructor(
    private readonly body: Buffer,
    start = 0,
  ) {
    this.#at = start;
  }

  get remaining(): number {
    return this.body.length - this.#at;
  }

  #need(bytes: number, what: string): void {
    if (this.remaining < bytes) throw new MalformedPacketError(`truncated ${what}`);
  }

  byte(what = 'byte'): number {
    this.#need(1, what);
    const value = this.body[this.#at]!;
    this.#at += 1;
    return value;
  }

  uint32(what = 'uint32'): number {
    this.#need(4, what);
    const value = this.body.readUInt32BE(this.#at);
    this.#at += 4;
    return value;
  }

  /** uint64 as a number; values beyond 2^53 come back as +Infinity, never as a wrong integer. */
  uint64(what = 'uint64'): number {
    this.#need(8, what);
    const value = this.body.readBigUInt64BE(this.#at);
    this.#at += 8;
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : Number.POSITIVE_INFINITY;
  }

  /** A §3 `string`, as raw bytes (a view into the packet). */
  bytes(what = 'string'): Buffer {
    const length = this.uint32(`${what} length`);
    this.#need(length, what);
    const value = this.body.subarray(this.#at, this.#at + length);
    this.#at += length;
    return value;
  }

  /** A §3 `string` rendered losslessly as text (see renderSftpString). */
  text(what = 'string'): string {
    return renderSftpString(this.bytes(what));
  }

  /** ATTRS (§5). */
  attrs(): SftpAttributes {
    const flags = this.uint32('attrs flags');
    const attrs: SftpAttributes = {};
    if (flags & FILEXFER_ATTR.SIZE) {
      const size = this.uint64('attrs size');
      attrs.size = Number.isFinite(size) ? size : Number.MAX_SAFE_INTEGER;
    }
    if (flags & FILEXFER_ATTR.UIDGID) {
      attrs.uid = this.uint32('attrs uid');
      attrs.gid = this.uint32('attrs gid');
    }
    if (flags & FILEXFER_ATTR.PERMISSIONS) attrs.permissions = this.uint32('attrs permissions');
    if (flags & FILEXFER_ATTR.ACMODTIME) {
      attrs.atime = this.uint32('attrs atime');
      attrs.mtime = this.uint32('attrs mtime');
    }
    if (flags & FILEXFER_ATTR.EXTENDED) {
      const count = this.uint32('attrs extended count');
      const extended: { type: string; data: string }[] = [];
      // Each pair costs at least 8 bytes, so `count` cannot outrun the packet.
      for (let i = 0; i < count; i += 1) {
        extended.push({
          type: this.text('attrs extended type'),
          data: this.text('attrs extended data'),
        });
      }
      attrs.extended = extended;
    }
    return attrs;
  }
}
