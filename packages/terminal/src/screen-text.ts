/**
 * Reading text back off an xterm.js buffer. Rows are the screen's physical
 * rows; a *logical line* is a row plus the rows that continue it because the
 * terminal auto-wrapped (`isWrapped`). Readline relies on auto-wrap for long
 * input, so a long command is one logical line over several rows, while a
 * newline inside the command (bracketed paste, Ctrl-V Ctrl-J) starts a new
 * logical line.
 */
import type { IBuffer, IBufferLine } from '@xterm/headless';

export interface Position {
  /** Absolute row index in the buffer (scrollback included). */
  row: number;
  /** Cell column; may equal the width when the row is full. */
  col: number;
}

export interface RowSpan {
  first: number;
  last: number;
}

export function logicalLineAround(buffer: IBuffer, row: number): RowSpan {
  let first = row;
  while (first > 0 && buffer.getLine(first)?.isWrapped === true) first--;
  let last = row;
  while (buffer.getLine(last + 1)?.isWrapped === true) last++;
  return { first, last };
}

/** The text of one row between two columns, without trimming. */
export function rowText(buffer: IBuffer, row: number, startCol = 0, endCol?: number): string {
  return buffer.getLine(row)?.translateToString(false, startCol, endCol) ?? '';
}

/**
 * Text from `from` up to the end of row `lastRow` (or up to `until`, exclusive
 * column, when given). Wrapped rows are joined as they are; a row that starts a
 * new logical line is preceded by "\n". Spaces are kept inside the text — a
 * space in the last column of a wrapped row is a real space — and trimmed only
 * at the end of each logical line, as the eye would. Cells of a wrapped row
 * that were never written are not spaces: they are the column a wide
 * character did not fit in, or the room a wider terminal added without
 * reflowing the line.
 */
export function readText(buffer: IBuffer, from: Position, lastRow: number, until?: number): string {
  let text = '';
  for (let row = from.row; row <= lastRow; row++) {
    const line = buffer.getLine(row);
    if (line === undefined) break;
    if (row > from.row && !line.isWrapped) text = text.replace(/ +$/, '') + '\n';
    const startCol = row === from.row ? from.col : 0;
    const continues = row < lastRow && buffer.getLine(row + 1)?.isWrapped === true;
    const endCol = row === lastRow ? until : continues ? writtenWidth(line) : undefined;
    text += line.translateToString(false, startCol, endCol);
  }
  return text;
}

/** Cells up to and including the last one written to (a written space counts). */
function writtenWidth(line: IBufferLine): number {
  for (let col = line.length - 1; col >= 0; col--) {
    const cell = line.getCell(col);
    // The right half of a wide character has width 0 and no text of its own.
    if (cell !== undefined && (cell.getChars() !== '' || cell.getWidth() === 0)) return col + 1;
  }
  return 0;
}

/** Trailing blanks of every line and trailing empty lines removed. */
export function trimLines(text: string): string {
  return text
    .split('\n')
    .map((line) => line.replace(/ +$/, ''))
    .join('\n')
    .replace(/\n+$/, '');
}

/** The last row at or after `from` that shows anything. */
export function lastNonBlankRow(buffer: IBuffer, from: number): number {
  for (let row = buffer.length - 1; row > from; row--) {
    if ((buffer.getLine(row)?.translateToString(true) ?? '') !== '') return row;
  }
  return from;
}
