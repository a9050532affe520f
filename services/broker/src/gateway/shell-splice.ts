import { ShellCommandExtractor, type InputDecision } from '@airlock/terminal';
import type { ClientChannel, PseudoTtyInfo } from 'ssh2';
import type { LiveSession } from './live-session.js';
import { noticeBytes } from './notices.js';
import { relayChannelEnd, vendorWritable, type VendorChannel } from './vendor-channel.js';

/** How long output must pause before the echo of typed keys is taken as settled. */
const ECHO_QUIET_MS = 15;
const ECHO_MAX_WAIT_MS = 250;

/** An exec whose stdin feeds a shell: its lines are commands too. */
const SHELL_PROGRAM = /^\s*(\S*\/)?(ba|z|k|da|a)?sh(\s+-[a-z]*)*\s*$/;

/**
 * Carries one shell or exec channel between the vendor and the asset:
 * output recorded then shown (with backpressure), input recorded, and every
 * submitted command made durable before the keystroke that submits it is
 * forwarded. With a pty, a headless terminal reads the line as the vendor
 * saw it; without one, input lines are commands as typed.
 */
export class ShellSplice {
  #id = -1;
  readonly #extractor: ShellCommandExtractor | null;
  readonly #lineMode: boolean;
  #lineBuffer = Buffer.alloc(0);
  #busy = false;
  readonly #queue: Buffer[] = [];
  /** The vendor sent EOF: once the queued input has gone on, the asset gets it too. */
  #inputEnded = false;
  #inputFinished = false;
  #outputDone: Promise<void> = Promise.resolve();
  #lastOutputAt = 0;
  #lastInputAt = 0;
  #stopped = false;

  constructor(
    private readonly session: LiveSession,
    private readonly channel: VendorChannel,
    private readonly upstream: ClientChannel,
    private readonly pty: PseudoTtyInfo | null,
    mode: 'shell' | 'exec',
    command = '',
  ) {
    this.#extractor =
      mode === 'shell' && pty !== null
        ? new ShellCommandExtractor({ cols: pty.cols || 80, rows: pty.rows || 24 })
        : null;
    this.#lineMode = this.#extractor === null && (mode === 'shell' || SHELL_PROGRAM.test(command));
  }

  start(id: number): void {
    this.#id = id;
    this.#lastOutputAt = this.#lastInputAt = Date.now();
    const { upstream, channel, session } = this;
    if (this.pty !== null)
      session.recorder.record(id, 'r', Buffer.from(`${this.pty.cols}x${this.pty.rows}`));
    upstream.on('data', (data: Buffer) => this.#output(data, false));
    upstream.stderr.on('data', (data: Buffer) => this.#output(data, true));
    relayChannelEnd(upstream, channel, { onClosed: () => this.stop(), stderr: true });
    upstream.on('error', (err: Error) => session.channelFailed(channel, err));
    channel.on('data', (data: Buffer) => this.#input(data));
    channel.once('end', () => this.#endInput());
    channel.once('close', () => {
      upstream.close();
      this.stop();
    });
    session.touch();
  }

  resize(cols: number, rows: number, width: number, height: number): void {
    // Nothing to resize once the shell is gone; nothing may be recorded once the recording is sealed.
    if (this.#stopped || !this.session.carriesOutput) return;
    this.upstream.setWindow(rows, cols, height, width);
    this.#extractor?.resize(cols, rows);
    this.session.recorder.record(this.#id, 'r', Buffer.from(`${cols}x${rows}`));
  }

  signal(name: string): void {
    this.upstream.signal(name);
  }

  /**
   * Puts the terminal emulator to rest once the shell has been quiet (no
   * input, no output) for the session's terminalRestAfterMs: an idle shell
   * then costs a few KiB instead of a whole emulator. Refused mid-line (see
   * ShellCommandExtractor.rest); the next output or key wakes it.
   */
  rest(nowMs: number): void {
    const extractor = this.#extractor;
    if (extractor === null || extractor.resting || this.#stopped) return;
    if (this.#busy || this.#queue.length > 0) return;
    const quietSince = Math.max(this.#lastOutputAt, this.#lastInputAt);
    if (nowMs - quietSince < this.session.terminalRestAfterMs) return;
    if (extractor.rest()) this.session.ctx.metrics.terminalRests.inc();
  }

  /**
   * Input goes on to the asset only while its channel takes it. Returns
   * false when the asset is not keeping up ('drain' follows).
   */
  #toAsset(data: Buffer): boolean {
    if (this.#stopped || this.upstream.writableEnded || this.upstream.destroyed) return true;
    return this.upstream.write(data);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    // Whatever held the vendor's input (an asset that will never drain now)
    // lets go: later input is dropped, and the channel can reach its end.
    this.channel.resume();
    this.#extractor?.dispose();
  }

  #output(data: Buffer, stderr: boolean): void {
    // stderr is a stream of its own on both sides, held and drained on its own:
    // waiting for stdout's drain would wait forever, and not holding it would
    // let a flood on stderr queue up in the broker without bound.
    const source = stderr ? this.upstream.stderr : this.upstream;
    if (!this.session.carriesOutput) {
      source.pause();
      return;
    }
    this.session.count('o', data.length);
    this.#lastOutputAt = Date.now();
    const recorded = this.session.recorder.record(this.#id, 'o', data);
    const target = stderr ? this.channel.stderr : this.channel;
    const written = target.write(data);
    if (this.#extractor !== null) {
      const extractor = this.#extractor;
      this.#outputDone = this.#outputDone
        .then(() => extractor.onOutput(data))
        .catch(() => undefined);
    }
    this.session.applyBackpressure(source, {
      bytes: data.length,
      recorded,
      congested: written ? null : target,
      // With a terminal a person is reading; without one, a program is (bulk).
      bulk: this.pty === null,
    });
  }

  #input(data: Buffer): void {
    if (this.session.failing || this.session.ended || this.#stopped) return;
    this.session.count('i', data.length);
    if (this.pty !== null) this.session.noteKeystroke();
    this.#lastInputAt = Date.now();
    const recorded = this.session.recorder.record(this.#id, 'i', data);
    if (this.#extractor === null && !this.#lineMode) {
      // A program's stdin (an upload into `cat > file`): held while the
      // recorder or the asset is behind, as output is the other way.
      const written = this.#toAsset(data);
      this.session.applyBackpressure(this.channel, {
        bytes: data.length,
        recorded,
        congested: written ? null : this.upstream,
        bulk: this.pty === null,
      });
      return;
    }
    this.#queue.push(data);
    if (this.#queue.length > 16) this.channel.pause();
    if (!this.#busy) void this.#drain();
  }

  /**
   * Input is judged strictly in order, each packet only after the terminal
   * has taken in all output that came before it: where the prompt ends is
   * read from the screen, so the screen must be current.
   */
  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0 && !this.session.ended && !this.session.failing) {
        const data = this.#queue.shift();
        if (data === undefined || this.#stopped) break;
        if (this.#extractor !== null) {
          await this.#outputDone;
          // The shell may have gone meanwhile: its terminal must stay disposed.
          if (this.#stopped) break;
          if (this.#extractor.resting) await this.#extractor.wake();
          const decision = this.#extractor.onInput(data);
          if (decision.kind === 'submit') await this.#submit(decision);
          else this.#toAsset(decision.data);
        } else {
          await this.#lineInput(data);
        }
      }
      if (this.#inputEnded && this.#queue.length === 0) await this.#finishInput();
    } catch (err) {
      this.session.failClosed(err);
    } finally {
      this.#busy = false;
      this.channel.resume();
    }
  }

  /** The vendor sent EOF. Lines still waiting for their audit go first (piped scripts). */
  #endInput(): void {
    this.#inputEnded = true;
    if (!this.#busy) void this.#drain();
  }

  async #finishInput(): Promise<void> {
    if (this.#inputFinished) return;
    this.#inputFinished = true;
    // A shell runs a last line that has no newline when it reads EOF: a command too.
    if (this.#lineMode && this.#lineBuffer.length > 0 && !this.session.failing) {
      const last = this.#lineBuffer;
      this.#lineBuffer = Buffer.alloc(0);
      await this.#lineCommand(last);
    }
    if (!this.#stopped && !this.upstream.writableEnded) this.upstream.end();
  }

  async #submit(decision: Extract<InputDecision, { kind: 'submit' }>): Promise<void> {
    const extractor = this.#extractor;
    if (extractor === null) return;
    let line = decision.line;
    // Keys typed in the same packet as Enter go on at once.
    if (decision.before.length > 0) this.#toAsset(decision.before);
    if (decision.awaitEcho) {
      // Keys of this line not yet echoed: let the asset echo them, then read the line as shown.
      await this.#echoSettled();
      line = extractor.currentLine();
    }
    await this.#commit(line, decision.enter);
    // What followed the Enter is judged once the shell has answered it.
    if (decision.after.length > 0) {
      await this.#echoSettled();
      this.#queue.unshift(decision.after);
    }
  }

  /** Waits until the asset has echoed the keys sent with an Enter (or output went quiet). */
  async #echoSettled(): Promise<void> {
    const started = Date.now();
    for (;;) {
      await this.#outputDone;
      const echo = this.#extractor?.echo ?? 'unpredictable';
      if (echo === 'seen' || echo === 'none') return;
      const now = Date.now();
      if (now - started >= ECHO_MAX_WAIT_MS) return;
      if (
        echo === 'unpredictable' &&
        this.#lastOutputAt >= started &&
        now - this.#lastOutputAt >= ECHO_QUIET_MS
      )
        return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Write-ahead: the command is durable (or refused) before `enter` reaches the asset. */
  async #commit(line: string, enter: Buffer): Promise<void> {
    await this.#outputDone;
    if (line.trim() === '') {
      this.#toAsset(enter);
      return;
    }
    const verdict = await this.session.recordCommand({
      channel: this.#id,
      kind: 'shell',
      text: line,
    });
    if (verdict === null) return;
    if (verdict.outcome === 'blocked') {
      // Clear what was typed rather than submit it; never send Enter after a blocked line.
      this.#toAsset(this.#extractor?.cancelSubmit() ?? ShellCommandExtractor.CLEAR_LINE);
      const why = verdict.rule?.description ?? `matches ${verdict.rule?.pattern ?? 'a zone rule'}`;
      const notice = noticeBytes(`Blocked by zone policy (${why}): ${line}`);
      if (vendorWritable(this.channel)) {
        this.channel.write(notice);
        this.session.recorder.record(this.#id, 'o', notice);
      }
      return;
    }
    this.#toAsset(enter);
  }

  /** Without a terminal, a line is a command once its newline arrives. */
  async #lineInput(data: Buffer): Promise<void> {
    this.#lineBuffer = Buffer.concat([this.#lineBuffer, data]);
    for (
      let newline = this.#lineBuffer.indexOf(0x0a);
      newline >= 0;
      newline = this.#lineBuffer.indexOf(0x0a)
    ) {
      const line = this.#lineBuffer.subarray(0, newline + 1);
      this.#lineBuffer = this.#lineBuffer.subarray(newline + 1);
      if (!(await this.#lineCommand(line))) return;
    }
  }

  /**
   * One line for a shell without a terminal: audited, then forwarded (or
   * refused by a rule). False when the audit store failed: nothing more goes on.
   */
  async #lineCommand(line: Buffer): Promise<boolean> {
    if (this.#stopped) return false;
    const text = line.toString('utf8').replace(/\r?\n$/, '');
    if (text.trim() === '') {
      this.#toAsset(line);
      return true;
    }
    const verdict = await this.session.recordCommand({ channel: this.#id, kind: 'shell', text });
    if (verdict === null) return false;
    if (verdict.outcome === 'blocked') {
      if (vendorWritable(this.channel, 'err'))
        this.channel.stderr.write(noticeBytes(`Blocked by zone policy: ${text}`));
    } else this.#toAsset(line);
    return true;
  }
}
