/**
 * Renders an SFTP `string` (§3: uint32 length + bytes; OpenSSH sends paths as
 * UTF-8 but the bytes are whatever the filesystem holds) as text that is
 * safe to store and display, and lossless:
 *
 * - well-formed UTF-8 is decoded as is, except that
 * - a backslash becomes `\\`, and
 * - C0 controls, DEL and every byte that is not part of a well-formed UTF-8
 *   sequence become `\xNN`.
 *
 * Because the backslash itself is escaped, two different byte strings never
 * render to the same text (an auditor can tell `a\xff` typed by the vendor
 * from the byte 0xFF). Escaping controls keeps NUL out of PostgreSQL `text`
 * and newlines/escape sequences out of log lines and terminals.
 */
export function renderSftpString(bytes: Buffer): string {
  let out = '';
  let runStart = 0;
  let i = 0;
  const flush = (end: number): void => {
    if (end > runStart) out += bytes.toString('utf8', runStart, end);
  };
  while (i < bytes.length) {
    const b0 = bytes[i]!;
    if (b0 >= 0x20 && b0 < 0x7f && b0 !== 0x5c) {
      i += 1;
      continue;
    }
    if (b0 >= 0x80) {
      const length = wellFormedSequenceLength(bytes, i);
      if (length > 0) {
        i += length;
        continue;
      }
    }
    flush(i);
    out += b0 === 0x5c ? '\\\\' : `\\x${b0.toString(16).padStart(2, '0')}`;
    i += 1;
    runStart = i;
  }
  flush(i);
  return out;
}

/**
 * Length of the well-formed UTF-8 sequence starting at `at`, or 0 if there is
 * none (Unicode 15, table 3-7: no overlong forms, no surrogates, ≤ U+10FFFF).
 */
function wellFormedSequenceLength(bytes: Buffer, at: number): number {
  const b0 = bytes[at]!;
  const cont = (offset: number, min = 0x80, max = 0xbf): boolean => {
    const b = bytes[at + offset];
    return b !== undefined && b >= min && b <= max;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
