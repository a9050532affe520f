/**
 * Write-ahead command extraction for interactive shells (DESIGN invariant 2:
 * a command reaches the asset only after its record is durable).
 *
 * The extractor keeps a headless terminal emulator fed with everything the
 * asset prints, so it sees what the vendor sees. When the vendor presses Enter
 * it reads the submitted line off that screen — after readline has applied
 * backspace, Ctrl-U/W, history recall, completion and the rest — instead of
 * replaying keystrokes through a model of readline that would drift from the
 * real one. It does no I/O and starts no timers: it is fed bytes and answers,
 * and the gateway owns forwarding, waiting and the audit store. The
 * heuristics and their limits are listed in this package's README.
 *
 * Security note: what is recorded is the screen, which the asset draws. A
 * hostile asset, a custom key binding (`bind`) or stray output can make the
 * screen disagree with what the shell runs. Command rules built on this are
 * defence in depth, not a sandbox; the raw input is in the session recording.
 */
import xtermSerialize from '@xterm/addon-serialize';
import xtermHeadless from '@xterm/headless';
import type { IBuffer, IMarker, Terminal as XtermTerminal } from '@xterm/headless';
import {
  lastNonBlankRow,
  logicalLineAround,
  readText,
  rowText,
  trimLines,
  type Position,
} from './screen-text.js';

// @xterm/headless ships CommonJS only; its named exports are not visible to ESM.
const { Terminal } = xtermHeadless;
const { SerializeAddon } = xtermSerialize;

/**
 * How the submitted line was found on the screen. Anything but `prompt` means
 * the screen changed shape since the vendor started typing; the text is still
 * the best reading of the screen, and the gateway may want to say so.
 *  - `prompt`: read from where the prompt ended when typing began (the normal case).
 *  - `redrawn-prompt`: the shell drew its prompt again elsewhere (Ctrl-L, a
 *    completion listing, type-ahead); read after that prompt on the cursor's line.
 *  - `search`: readline's incremental search (Ctrl-R); read after its `': ` marker.
 *  - `unanchored`: no prompt recognised; the text may contain stray output or the prompt.
 */
export type LineLocation = 'prompt' | 'redrawn-prompt' | 'search' | 'unanchored';

export interface SubmittedLine {
  /**
   * The command as the user saw it on the prompt line: prompt removed, trailing
   * spaces trimmed, wrapped rows joined. A newline in the line itself (a
   * bracketed paste of several lines, Ctrl-V Ctrl-J) is kept as "\n".
   */
  text: string;
  fullScreen: false;
  location: LineLocation;
  /**
   * The prompt text left of the line on its row ("$ ", or PS2's "> " for a
   * continuation line), as far as it was recognised; '' when unknown.
   */
  prompt: string;
}

export type InputDecision =
  /** Pass these input bytes on to the asset now. */
  | { kind: 'forward'; data: Buffer }
  /**
   * Enter at a shell prompt. `line` (= `submitted.text`) must be durable in the
   * audit store, and pass the command rules, BEFORE `enter` is forwarded.
   *
   * `before` holds the keys that shared the packet with the Enter; they may be
   * forwarded at once, but `line` was read before the shell echoed them (it
   * includes a prediction of plain typed text only). When `before` is not
   * empty: forward it, wait for the echo (`echo` says when plain text has
   * arrived; otherwise wait for output to go quiet), and take the line from
   * `currentLine()`. `after` is what followed the Enter: feed it back through
   * onInput once the asset has answered the Enter.
   *
   * `awaitEcho` is true whenever keys of this line may not be on the screen
   * yet: `before` is not empty, or keys forwarded in earlier packets have not
   * been echoed (a fast typist, a paste, a slow link: the Enter can arrive
   * before the echo of the keys typed just before it). Then wait as for
   * `before` and take the line from `currentLine()`; reading it at once would
   * record a line the shell will not run.
   */
  | {
      kind: 'submit';
      line: string;
      submitted: SubmittedLine;
      before: Buffer;
      enter: Buffer;
      after: Buffer;
      awaitEcho: boolean;
    }
  /** Alternate screen active (vi, top, less): forward, record as input, never as a command. */
  | { kind: 'fullscreen-input'; data: Buffer };

/**
 * After a submit with a non-empty `before`: whether the shell's echo of those
 * bytes is on the screen yet. `unpredictable` when they held editing or
 * control keys whose effect only the shell knows: wait for output to go quiet.
 */
export type EchoState = 'none' | 'waiting' | 'seen' | 'unpredictable';

export interface ShellCommandExtractorOptions {
  cols: number;
  rows: number;
  /** Rows kept above the screen; a line being typed must fit in screen + scrollback. */
  scrollback?: number;
}

const CR = 0x0d;
const LF = 0x0a;
/** Ctrl-O: readline's operate-and-get-next, which executes the line like Enter. */
const CTRL_O = 0x0f;
const CTRL_C = 0x03;
/** Ctrl-V: readline's quoted-insert; the next byte goes into the line literally. */
const CTRL_V = 0x16;
const PASTE_START = Buffer.from('\x1b[200~');
const PASTE_END = Buffer.from('\x1b[201~');

/**
 * Readline replaces the prompt while searching history (Ctrl-R / Ctrl-S) or
 * reading a numeric argument (Alt-digit); the line follows the marker. A search
 * string that itself contains `': ` is cut short — documented limit.
 */
const READLINE_TEMPORARY_PROMPT =
  /^(?:\((?:failed )?(?:reverse-)?i-search\)`.*?': |\(arg: -?\d+\) )/s;

interface PromptAnchor {
  /** Follows the prompt row as the buffer scrolls; disposed when it leaves the scrollback. */
  marker: IMarker;
  col: number;
  /** What the prompt row showed left of `col` when the anchor was taken. */
  promptText: string;
}

export class ShellCommandExtractor {
  /** Ctrl-E (end of line) then Ctrl-U (kill to line start): empties a readline/bash input line. */
  static readonly CLEAR_LINE: Buffer = Buffer.from([0x05, 0x15]);

  #terminal: XtermTerminal | null;
  /** While resting: the screen as escape sequences that redraw it (see rest()). */
  #restingScreen: string | null = null;
  #resizeOnWake: { cols: number; rows: number } | null = null;
  #cols: number;
  #rows: number;
  readonly #scrollback: number;
  /** Output handed to the terminal and not yet parsed. */
  #unparsed = 0;
  #anchor: PromptAnchor | undefined;
  /** Prompt text of the last line that was found at its prompt; recognises redrawn prompts. */
  #knownPromptText = '';
  /** The line may hold a newline of its own, so it can span several logical lines. */
  #lineMayHoldNewline = false;
  #inLiteralPaste = false;
  #markerMatched = 0;
  #quotedInsertPending = false;
  /** The last Enter was a CR ending its packet; an LF opening the next packet belongs to it. */
  #lastEnterWasCr = false;
  /** Text the shell should echo for the last submit's `before`; null when unpredictable. */
  #expectedEcho: string | null | undefined;
  /** A submit was answered; its anchor lives until the next input. */
  #submitted = false;
  /**
   * Predicted echo of the keys forwarded since output was last parsed (null:
   * some were editing or control keys). Echo comes in order, so once the
   * screen ends with the last of them, all of them are shown.
   */
  #unechoed: string | null = '';

  constructor(options: ShellCommandExtractorOptions) {
    assertSize(options.cols, options.rows);
    this.#cols = options.cols;
    this.#rows = options.rows;
    this.#scrollback = options.scrollback ?? 1000;
    this.#terminal = this.#newTerminal();
  }

  #newTerminal(): XtermTerminal {
    return new Terminal({
      cols: this.#cols,
      rows: this.#rows,
      scrollback: this.#scrollback,
      // @xterm/headless counts its buffer API (the whole point here) as proposed.
      allowProposedApi: true,
    });
  }

  /** The live terminal; reading the screen while resting is a caller's bug (await wake() first). */
  get #term(): XtermTerminal {
    if (this.#terminal === null)
      throw new Error('the shell command extractor is resting: await wake() before reading it');
    return this.#terminal;
  }

  get inAlternateScreen(): boolean {
    return this.#term.buffer.active.type === 'alternate';
  }

  /** True between rest() and the next wake(); onOutput() wakes it by itself. */
  get resting(): boolean {
    return this.#terminal === null;
  }

  onOutput(data: Buffer): Promise<void> {
    // A resting terminal is woken first: its redraw is queued ahead of this output.
    if (this.resting) void this.wake();
    const terminal = this.#term;
    this.#unparsed += 1;
    // xterm parses a write on a timer (≥ 1 ms in Node) unless user input came
    // just before, when it parses at once to keep echo fast. Every key the
    // gateway judges waits for the output before it, so parse at once always:
    // an empty input marked as the user's only sets that flag.
    terminal.input('', true);
    return new Promise((resolve) => {
      terminal.write(data, () => {
        this.#unparsed -= 1;
        this.#unechoed = '';
        resolve();
      });
    });
  }

  /**
   * Gives up the terminal emulator of an idle shell — most of what a session
   * costs in memory — keeping only what redraws its screen. Refused (false)
   * while a line is being typed or output is still being parsed: the prompt
   * anchor and the scanner's state live in the terminal, and a line's start
   * must be read where it was typed. At rest nothing is lost that the next
   * line needs: the next key takes a new anchor from the redrawn screen, as it
   * would after any submitted line. Scroll regions and character sets are not
   * redrawn (see the README).
   */
  rest(): boolean {
    const terminal = this.#terminal;
    if (terminal === null) return true;
    if (this.#unparsed > 0) return false;
    const midLine =
      (this.#anchor !== undefined && !this.#submitted) ||
      this.#inLiteralPaste ||
      this.#quotedInsertPending ||
      this.#markerMatched > 0;
    if (midLine) return false;
    if (this.#submitted) {
      // What the next input would do first anyway.
      this.#submitted = false;
      this.#resetLine();
    }
    const serializer = new SerializeAddon();
    terminal.loadAddon(serializer);
    // One screen of scrollback covers a prompt that wrapped above the top row.
    this.#restingScreen = serializer.serialize({ scrollback: this.#rows });
    terminal.dispose();
    this.#terminal = null;
    return true;
  }

  /** Brings a resting extractor back: a fresh terminal that has redrawn the saved screen. */
  wake(): Promise<void> {
    if (this.#terminal !== null) return Promise.resolve();
    const terminal = this.#newTerminal();
    const screen = this.#restingScreen ?? '';
    this.#terminal = terminal;
    this.#restingScreen = null;
    this.#unparsed += 1;
    return new Promise((resolve) => {
      terminal.write(screen, () => {
        // Runs before any output queued behind the redraw is parsed.
        this.#unparsed -= 1;
        const size = this.#resizeOnWake;
        this.#resizeOnWake = null;
        if (size !== null) this.resize(size.cols, size.rows);
        resolve();
      });
    });
  }

  onInput(data: Buffer): InputDecision {
    this.#expectedEcho = undefined;
    if (this.#submitted) {
      this.#submitted = false;
      this.#resetLine();
    }
    if (this.inAlternateScreen) {
      this.#resetLine();
      return { kind: 'fullscreen-input', data };
    }
    if (data.length === 0) return { kind: 'forward', data };
    this.#anchor ??= this.#takeAnchor();

    let i = 0;
    if (this.#lastEnterWasCr && data[0] === LF) i = 1;
    this.#lastEnterWasCr = false;

    for (; i < data.length; i++) {
      const byte = data[i] as number;
      if (this.#quotedInsertPending) {
        this.#quotedInsertPending = false;
        if (byte === LF || byte === CR) this.#lineMayHoldNewline = true;
        continue;
      }
      if (this.#matchPasteMarker(byte)) continue;
      if (this.#inLiteralPaste) {
        // The shell asked for bracketed paste (DECSET 2004), so readline inserts
        // pasted newlines into the line instead of executing it.
        if (byte === LF || byte === CR) this.#lineMayHoldNewline = true;
        continue;
      }
      if (byte === CTRL_V) {
        this.#quotedInsertPending = true;
      } else if (byte === CTRL_C) {
        // The shell abandons the line and draws a new prompt; the next packet
        // takes a new anchor (keys in this one after Ctrl-C have none).
        this.#resetLine();
      } else if (byte === CR || byte === LF || byte === CTRL_O) {
        return this.#submit(data, i);
      }
    }
    this.#noteForwarded(data);
    return { kind: 'forward', data };
  }

  #noteForwarded(data: Buffer): void {
    if (this.#unechoed === null) return;
    const echo = predictEcho(data);
    this.#unechoed = echo === null ? null : this.#unechoed + echo;
  }

  /**
   * The last submitted line was refused (a command rule blocked it) and its
   * Enter will not be forwarded. Returns the bytes to send instead, which
   * empty the line on the asset, and keeps the prompt where it is so the
   * next line is read from it, even if the vendor types before the shell has
   * redrawn the emptied line.
   */
  cancelSubmit(): Buffer {
    if (this.#submitted) {
      this.#submitted = false;
      this.#lastEnterWasCr = false;
      this.#resetScanner();
    }
    return ShellCommandExtractor.CLEAR_LINE;
  }

  /**
   * The line as the screen shows it now, read like a submitted line. After a
   * submit whose `before` was not empty, this is the line to record once the
   * echo has arrived.
   */
  currentLine(): string {
    return this.currentSubmittedLine().text;
  }

  currentSubmittedLine(): SubmittedLine {
    if (this.inAlternateScreen) {
      return { text: '', fullScreen: false, location: 'unanchored', prompt: '' };
    }
    return this.#readSubmittedLine();
  }

  /** See {@link EchoState}. */
  get echo(): EchoState {
    const expected = this.#expectedEcho;
    if (expected === undefined) return 'none';
    if (expected === null) return 'unpredictable';
    if (expected === '') return 'seen';
    return this.#textBeforeCursor().endsWith(expected) ? 'seen' : 'waiting';
  }

  resize(cols: number, rows: number): void {
    assertSize(cols, rows);
    if (this.#terminal === null) {
      // A resting screen is redrawn at the size it was saved in, then resized (see wake()).
      this.#resizeOnWake = { cols, rows };
      return;
    }
    this.#terminal.resize(cols, rows);
    this.#cols = cols;
    this.#rows = rows;
  }

  dispose(): void {
    this.#resetLine();
    this.#terminal?.dispose();
    this.#terminal = null;
    this.#restingScreen = null;
  }

  get #buffer(): IBuffer {
    return this.#term.buffer.active;
  }

  get #cursor(): Position {
    const buffer = this.#buffer;
    return { row: buffer.baseY + buffer.cursorY, col: buffer.cursorX };
  }

  #submit(data: Buffer, at: number): InputDecision {
    const enterByte = data[at];
    const enterLength = enterByte === CR && data[at + 1] === LF ? 2 : 1;
    const before = data.subarray(0, at);
    const submitted = this.#readSubmittedLine();
    const unechoed = this.#unechoed;
    this.#unechoed = '';
    if (before.length > 0) {
      const predicted = predictEcho(before);
      this.#expectedEcho = predicted === null || unechoed === null ? null : unechoed + predicted;
      if (predicted !== null && unechoed === '' && this.#cursorAtLineEnd()) {
        submitted.text = trimLines(submitted.text + predicted);
      }
    } else if (unechoed !== '') {
      this.#expectedEcho = unechoed;
    }
    const awaitEcho = before.length > 0 || unechoed !== '';
    // The anchor stays until the next input so that currentLine() can re-read
    // the line once `before` has been echoed.
    this.#submitted = true;
    this.#lastEnterWasCr = enterLength === 1 && enterByte === CR && at + 1 === data.length;
    return {
      kind: 'submit',
      line: submitted.text,
      submitted,
      before,
      enter: data.subarray(at, at + enterLength),
      after: data.subarray(at + enterLength),
      awaitEcho,
    };
  }

  #cursorAtLineEnd(): boolean {
    const buffer = this.#buffer;
    const cursor = this.#cursor;
    const { last } = logicalLineAround(buffer, cursor.row);
    if (lastNonBlankRow(buffer, cursor.row) > last) return false;
    return readText(buffer, cursor, last).trim() === '';
  }

  /**
   * The prompt ends where the cursor stands when the first key of a line is
   * typed: the shell has drawn its prompt and nothing of the line yet.
   */
  #takeAnchor(): PromptAnchor | undefined {
    const marker = this.#term.registerMarker(0);
    if (marker === undefined) return undefined;
    const col = this.#buffer.cursorX;
    return { marker, col, promptText: rowText(this.#buffer, marker.line, 0, col) };
  }

  #resetLine(): void {
    this.#anchor?.marker.dispose();
    this.#anchor = undefined;
    this.#resetScanner();
  }

  #resetScanner(): void {
    this.#lineMayHoldNewline = false;
    this.#inLiteralPaste = false;
    this.#markerMatched = 0;
    this.#quotedInsertPending = false;
  }

  /** Tracks the bracketed-paste markers, which may straddle packets. True while inside one. */
  #matchPasteMarker(byte: number): boolean {
    const marker = this.#inLiteralPaste ? PASTE_END : PASTE_START;
    if (byte === marker[this.#markerMatched]) {
      this.#markerMatched++;
      if (this.#markerMatched === marker.length) {
        this.#markerMatched = 0;
        // Only a shell that enabled bracketed paste treats the markers as such;
        // to any other program the pasted newlines are plain Enters.
        this.#inLiteralPaste = !this.#inLiteralPaste && this.#term.modes.bracketedPasteMode;
      }
      return true;
    }
    this.#markerMatched = byte === marker[0] ? 1 : 0;
    return this.#markerMatched === 1;
  }

  /** The anchor, if the screen still shows its prompt where it was taken. */
  #liveAnchor(cursorRow: number): LiveAnchor | undefined {
    const anchor = this.#anchor;
    if (anchor === undefined || anchor.marker.isDisposed || anchor.marker.line < 0)
      return undefined;
    const row = anchor.marker.line;
    if (row > cursorRow) return undefined;
    if (rowText(this.#buffer, row, 0, anchor.col) !== anchor.promptText) return undefined;
    return { row, col: anchor.col, prompt: anchor.promptText };
  }

  #promptTexts(): string[] {
    const texts = [this.#anchor?.promptText ?? '', this.#knownPromptText];
    return texts.filter((text, index) => text.trim() !== '' && texts.indexOf(text) === index);
  }

  #readSubmittedLine(): SubmittedLine {
    const buffer = this.#buffer;
    const cursor = this.#cursor;
    const cursorLine = logicalLineAround(buffer, cursor.row);
    const anchor = this.#liveAnchor(cursor.row);

    const found = this.#lineMayHoldNewline
      ? this.#readMultiLine(cursor.row, cursorLine.last, anchor)
      : this.#readSingleLine(cursorLine.first, cursorLine.last, anchor);
    if (found.location === 'prompt' && found.prompt.trim() !== '') {
      this.#knownPromptText = found.prompt;
    }
    return {
      text: trimLines(found.text),
      fullScreen: false,
      location: found.location,
      prompt: found.prompt,
    };
  }

  /**
   * Without a newline of its own the line is exactly one logical line, and
   * readline keeps the cursor inside it: the cursor's logical line is the line.
   */
  #readSingleLine(first: number, last: number, anchor: LiveAnchor | undefined): Found {
    const buffer = this.#buffer;
    if (anchor !== undefined && anchor.row >= first) {
      return { text: readText(buffer, anchor, last), location: 'prompt', prompt: anchor.prompt };
    }
    const whole = readText(buffer, { row: first, col: 0 }, last);
    const temporaryPrompt = READLINE_TEMPORARY_PROMPT.exec(whole)?.[0];
    if (temporaryPrompt !== undefined) {
      return {
        text: whole.slice(temporaryPrompt.length),
        location: 'search',
        prompt: temporaryPrompt,
      };
    }
    const prompt = this.#promptTexts().find((text) => whole.startsWith(text));
    if (prompt !== undefined) {
      return { text: whole.slice(prompt.length), location: 'redrawn-prompt', prompt };
    }
    // Output landed inside the line (a background job printed while the vendor
    // typed): keep everything from the prompt on rather than lose the start.
    if (anchor !== undefined) {
      return {
        text: readText(buffer, anchor, last),
        location: 'unanchored',
        prompt: anchor.prompt,
      };
    }
    return { text: whole, location: 'unanchored', prompt: '' };
  }

  /**
   * A line holding newlines spans several logical lines, and the cursor may be
   * on any of them: read from the prompt to the last row that shows anything.
   */
  #readMultiLine(cursorRow: number, cursorLineLast: number, anchor: LiveAnchor | undefined): Found {
    const buffer = this.#buffer;
    const last = Math.max(cursorLineLast, lastNonBlankRow(buffer, cursorRow));
    if (anchor !== undefined) {
      return { text: readText(buffer, anchor, last), location: 'prompt', prompt: anchor.prompt };
    }
    // The prompt was drawn again (e.g. Ctrl-L). Take the topmost prompt-like
    // row on the screen above the cursor, not the nearest: a pasted line may
    // itself begin like a prompt, and must not hide the lines before it.
    const prompts = this.#promptTexts();
    for (let row = buffer.baseY; row <= cursorRow; row++) {
      const text = rowText(buffer, row);
      const prompt = prompts.find((candidate) => text.startsWith(candidate));
      if (prompt !== undefined) {
        return {
          text: readText(buffer, { row, col: 0 }, last).slice(prompt.length),
          location: 'redrawn-prompt',
          prompt,
        };
      }
    }
    const first = logicalLineAround(buffer, cursorRow).first;
    return {
      text: readText(buffer, { row: first, col: 0 }, last),
      location: 'unanchored',
      prompt: '',
    };
  }

  /** What the line shows from its start up to the cursor, for echo checks. */
  #textBeforeCursor(): string {
    const buffer = this.#buffer;
    const cursor = this.#cursor;
    const start = this.#liveAnchor(cursor.row) ?? {
      row: logicalLineAround(buffer, cursor.row).first,
      col: 0,
    };
    const text = readText(buffer, start, cursor.row, cursor.col);
    // Cells the cursor has not reached are blank; a paste echo ends in "\n" rows.
    return text.replace(/[ \n]+$/, '');
  }
}

interface LiveAnchor extends Position {
  prompt: string;
}

interface Found {
  text: string;
  location: LineLocation;
  prompt: string;
}

/**
 * What readline will echo for bytes it merely inserts: printable text, pasted
 * newlines shown as line breaks. Anything else (editing keys, Tab, Ctrl-C,
 * escape sequences other than the paste markers) makes the echo unpredictable.
 */
function predictEcho(data: Buffer): string | null {
  let text = data.toString('utf8');
  const pasted = text.includes('\x1b[200~');
  text = text.replaceAll('\x1b[200~', '').replaceAll('\x1b[201~', '');
  if (pasted) text = text.replace(/\r\n?/g, '\n');
  // eslint-disable-next-line no-control-regex -- control characters are the point
  if (/[\x00-\x09\x0b-\x1f\x7f]/.test(text) || (!pasted && text.includes('\n'))) return null;
  return text.replace(/[ \n]+$/, '');
}

function assertSize(cols: number, rows: number): void {
  if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 2 || rows < 1) {
    throw new RangeError(`terminal size must be whole cells, got ${cols}x${rows}`);
  }
}
