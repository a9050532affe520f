/** RFC 4648 §6 base32 alphabet. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

const VALUE_BY_CHAR: ReadonlyMap<string, number> = new Map([...ALPHABET].map((c, i) => [c, i]));

/** Base32 without padding: authenticator apps expect the bare form in otpauth URIs. */
export function base32Encode(buf: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes base32 as people copy it: any case, spaces or dashes between groups,
 * optional trailing `=` padding. Anything else is refused rather than skipped,
 * so that a mistyped secret fails at enrolment instead of yielding wrong codes.
 */
export function base32Decode(text: string): Buffer {
  const cleaned = text
    .replace(/[\s-]+/g, '')
    .replace(/=+$/, '')
    .toUpperCase();
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of cleaned) {
    const v = VALUE_BY_CHAR.get(char);
    if (v === undefined) throw new Error('base32: invalid character');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
    value &= (1 << bits) - 1;
  }
  // RFC 4648 §6: the final quantum holds 8, 16, 24 or 32 bits -> 2, 4, 5 or 7 characters.
  if ([1, 3, 6].includes(cleaned.length % 8)) throw new Error('base32: invalid length');
  // RFC 4648 §3.5: decoders MAY reject non-zero pad bits; doing so keeps one text per value.
  if (value !== 0) throw new Error('base32: non-canonical encoding');
  return Buffer.from(out);
}
