import type { RecordedFrame } from './frames.js';

/**
 * Terminal control sequences (ECMA-48): OSC strings ended by BEL or ST; DCS,
 * SOS, PM and APC strings ended by ST; CSI sequences (7-bit and 8-bit
 * introducer); and the remaining two- and three-byte escape sequences
 * (charset selection, keypad modes, save/restore cursor, …).
 */
const CONTROL_SEQUENCE =
  // eslint-disable-next-line no-control-regex
  /\x1b\][\s\S]*?(?:\x07|\x1b\\)|\x1b[PX^_][\s\S]*?\x1b\\|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]|\x1b/g;
// eslint-disable-next-line no-control-regex
const OTHER_CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * The text a vendor was shown, for search and tests: output frames decoded as
 * UTF-8, control sequences removed, CRLF turned into LF, and other control
 * characters (lone CR, backspace, bell) dropped. It does not emulate a
 * terminal: text that was later overwritten or erased on screen is kept, which
 * is what a search over a session should find.
 */
export function outputText(frames: readonly RecordedFrame[]): string {
  const text = new TextDecoder('utf-8').decode(Buffer.concat(frames.map((frame) => frame.data)));
  return text.replace(CONTROL_SEQUENCE, '').replace(/\r\n/g, '\n').replace(OTHER_CONTROLS, '');
}
