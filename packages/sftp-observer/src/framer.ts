/** The byte stream does not frame into packets of §3: the stream cannot be trusted. */
export class FramingError extends Error {
  override readonly name = 'FramingError';
}

export type FramedPacket =
  /** A whole packet: `raw` is the uint32 length followed by the body (type byte first). */
  | { type: number; raw: Buffer; skipped?: never }
  /** A packet whose body was not wanted: only its type and request id were read, the rest discarded. */
  | { type: number; requestId: number; skipped: true };

/**
 * Cuts a byte stream into SFTP packets (§3: `uint32 length`, then `length`
 * bytes starting with the type byte). Input may arrive in pieces of any size,
 * including one byte at a time; memory stays bounded by one packet.
 *
 * Packets whose type `wantsBody` rejects are not buffered: their request id is
 * read and the rest of their bytes are skipped as they arrive, so a long NAME
 * listing from the server costs nothing and is not subject to the size limit.
 */
export class PacketFramer {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #skip = 0;

  constructor(
    private readonly maxPacketBytes: number,
    private readonly wantsBody: (type: number) => boolean = () => true,
  ) {}

  push(data: Buffer): FramedPacket[] {
    let input = data;
    if (this.#skip > 0) {
      const skipped = Math.min(this.#skip, input.length);
      this.#skip -= skipped;
      input = input.subarray(skipped);
    }
    if (input.length > 0) {
      this.#chunks.push(input);
      this.#buffered += input.length;
    }
    const packets: FramedPacket[] = [];
    while (this.#buffered >= 4) {
      const head = this.#head(9);
      const length = head.readUInt32BE(0);
      if (length < 1) throw new FramingError('packet without a type byte');
      if (this.#buffered < 5) break;
      const type = head[4]!;
      if (this.wantsBody(type)) {
        if (length > this.maxPacketBytes) {
          throw new FramingError(
            `packet of ${length} bytes exceeds the limit of ${this.maxPacketBytes}`,
          );
        }
        if (this.#buffered < 4 + length) break;
        packets.push({ type, raw: this.#take(4 + length) });
      } else {
        if (length < 5) throw new FramingError(`packet type ${type} without a request id`);
        if (this.#buffered < 9) break;
        const requestId = head.readUInt32BE(5);
        const consumed = Math.min(this.#buffered, 4 + length);
        this.#take(consumed);
        this.#skip = 4 + length - consumed;
        packets.push({ type, requestId, skipped: true });
      }
    }
    return packets;
  }

  /** The first `n` buffered bytes (fewer if fewer are buffered), merged into the first chunk. */
  #head(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n || this.#chunks.length === 1) return first;
    const merged = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [merged];
    return merged;
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    const source = first.length >= n ? first : Buffer.concat(this.#chunks, this.#buffered);
    const taken = source.subarray(0, n);
    const rest = source.subarray(n);
    if (source === first) this.#chunks.shift();
    else this.#chunks = [];
    if (rest.length > 0) this.#chunks.unshift(rest);
    this.#buffered -= n;
    return taken;
  }
}
