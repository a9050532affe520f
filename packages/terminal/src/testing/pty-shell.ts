/**
 * A real interactive bash in a pseudo-terminal, driven the way the SSH gateway
 * drives an asset's shell: every output byte goes through the extractor, every
 * input packet is judged by it, and a submitted line is "recorded" before its
 * Enter is written. bash's own history file is the ground truth of what ran.
 */
import { mkdtemp, readFile, rm, symlink, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pty from 'node-pty';
import { ShellCommandExtractor, type SubmittedLine } from '../shell-command-extractor.js';

/** Output is taken as complete once it pauses this long after the shell started answering. */
const QUIET_MS = 25;
/** A key the shell answers with nothing (rare: readline rings the bell for most no-ops). */
const SILENT_MS = 200;
const MAX_WAIT_MS = 3000;

export interface PtyShellOptions {
  cols?: number;
  rows?: number;
}

/** Programs the scenarios run; the shell's PATH holds nothing else, so `ec<Tab>` can only be `echo`. */
const PROGRAMS = ['less', 'vi', 'sleep'];

export class PtyShell {
  readonly extractor: ShellCommandExtractor;
  /** Lines recorded (made "durable") before their Enter was forwarded. */
  readonly recorded: SubmittedLine[] = [];
  /** Input packets judged full-screen. */
  readonly fullScreenInput: string[] = [];
  /** A command rule: matching lines are recorded as blocked and never get their Enter. */
  blockIf: RegExp | undefined;
  readonly blocked: string[] = [];
  #output = Buffer.alloc(0);
  #outputDone: Promise<void> = Promise.resolve();
  #lastOutputAt = Date.now();
  #lastInputAt = Date.now();
  #exited = false;

  private constructor(
    private readonly pty: pty.IPty,
    readonly dir: string,
    private readonly histFile: string,
    cols: number,
    rows: number,
  ) {
    this.extractor = new ShellCommandExtractor({ cols, rows });
    pty.onData((data: string | Buffer) => {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      this.#output = Buffer.concat([this.#output, bytes]);
      this.#lastOutputAt = Date.now();
      this.#outputDone = this.#outputDone.then(() => this.extractor.onOutput(bytes));
    });
    pty.onExit(() => {
      this.#exited = true;
    });
  }

  static async start(options: PtyShellOptions = {}): Promise<PtyShell> {
    const cols = options.cols ?? 80;
    const rows = options.rows ?? 24;
    const dir = await mkdtemp(join(tmpdir(), 'airlock-terminal-'));
    const bin = join(dir, 'bin');
    const work = join(dir, 'work');
    await mkdir(bin);
    await mkdir(work);
    for (const program of PROGRAMS) await symlink(locate(program), join(bin, program));
    const histFile = join(dir, 'history');
    const child = pty.spawn(locate('bash'), ['--norc', '--noprofile', '-i'], {
      name: 'xterm-256color',
      cols,
      rows,
      cwd: work,
      encoding: null,
      env: {
        PATH: bin,
        HOME: dir,
        TERM: 'xterm-256color',
        LANG: 'C.UTF-8',
        PS1: '$ ',
        PS2: '> ',
        HISTFILE: histFile,
        // Timestamps mark where each history entry starts, so a multi-line
        // entry reads back as one.
        HISTTIMEFORMAT: '%s ',
        PROMPT_COMMAND: 'history -a',
        LESS: '',
        LESSHISTFILE: '-',
      },
    });
    const shell = new PtyShell(child, work, histFile, cols, rows);
    await shell.waitForPrompt();
    return shell;
  }

  /** All output so far, escape sequences included. */
  get output(): string {
    return this.#output.toString('utf8');
  }

  /**
   * Types each packet as the vendor's client would send it, waiting for the
   * shell to answer before the next one, as a person would.
   */
  async type(...packets: string[]): Promise<void> {
    for (const packet of packets) {
      await this.#outputDone;
      await this.#send(Buffer.from(packet, 'utf8'));
      await this.settle();
    }
  }

  /** Types a command line's packets, then waits until the next prompt is drawn. */
  async run(...packets: string[]): Promise<void> {
    const mark = this.#output.length;
    await this.type(...packets);
    await this.waitForPrompt(mark);
  }

  /** Types an unfinished line's packets, then waits for the continuation prompt (PS2). */
  async continueLine(...packets: string[]): Promise<void> {
    const mark = this.#output.length;
    await this.type(...packets);
    await this.waitForPrompt(mark, '> ');
  }

  #write(data: Buffer): void {
    this.#lastInputAt = Date.now();
    this.pty.write(data);
  }

  async #send(data: Buffer): Promise<void> {
    const decision = this.extractor.onInput(data);
    switch (decision.kind) {
      case 'forward':
        this.#write(decision.data);
        return;
      case 'fullscreen-input':
        this.fullScreenInput.push(decision.data.toString('utf8'));
        this.#write(decision.data);
        return;
      case 'submit': {
        let submitted = decision.submitted;
        if (decision.before.length > 0) {
          this.#write(decision.before);
          await this.#awaitEcho();
          submitted = this.extractor.currentSubmittedLine();
        }
        if (this.blockIf?.test(submitted.text) === true) {
          // A blocked line is emptied on the asset instead of submitted.
          this.blocked.push(submitted.text);
          this.#write(this.extractor.cancelSubmit());
          return;
        }
        // Write-ahead: the line is recorded before the Enter leaves.
        if (submitted.text.trim() !== '') this.recorded.push(submitted);
        this.#write(decision.enter);
        if (decision.after.length > 0) {
          await this.settle();
          await this.#send(decision.after);
        }
        return;
      }
    }
  }

  async #awaitEcho(): Promise<void> {
    const started = Date.now();
    while (Date.now() - started < MAX_WAIT_MS) {
      await this.#outputDone;
      const echo = this.extractor.echo;
      if (echo === 'seen') return;
      if (echo === 'unpredictable') return this.settle();
      await delay(5);
    }
  }

  /**
   * Waits until the shell has answered the last input and paused, and the
   * emulator has caught up.
   */
  async settle(): Promise<void> {
    const started = Date.now();
    for (;;) {
      const now = Date.now();
      const answered = this.#lastOutputAt >= this.#lastInputAt;
      if (answered && now - this.#lastOutputAt >= QUIET_MS) break;
      if (!answered && now - this.#lastInputAt >= SILENT_MS) break;
      if (now - started > MAX_WAIT_MS) break;
      await delay(3);
    }
    await this.#outputDone;
  }

  /** Waits until output since `mark` ends with a fresh prompt. */
  async waitForPrompt(mark = 0, prompt = '$ '): Promise<void> {
    await this.#waitFor(JSON.stringify(prompt), (output) =>
      output.subarray(mark).toString('utf8').endsWith(prompt),
    );
  }

  async waitForOutput(text: string): Promise<void> {
    await this.#waitFor(JSON.stringify(text), (output) => output.includes(text));
  }

  /** Waits until a full-screen program has switched to the alternate screen. */
  async waitForAlternateScreen(): Promise<void> {
    await this.#waitFor('alternate screen', () => this.extractor.inAlternateScreen);
  }

  async #waitFor(what: string, done: (output: Buffer) => boolean): Promise<void> {
    const started = Date.now();
    while (!done(this.#output)) {
      if (this.#exited) throw new Error(`bash exited; output:\n${this.output}`);
      if (Date.now() - started > MAX_WAIT_MS) {
        throw new Error(`no ${what} in output:\n${JSON.stringify(this.output)}`);
      }
      await delay(5);
    }
    await this.settle();
  }

  /** The entries bash itself wrote to its history file: what actually ran. */
  async history(): Promise<string[]> {
    const text = await readFile(this.histFile, 'utf8').catch(() => '');
    const entries: string[][] = [];
    for (const line of text.split('\n')) {
      if (/^#\d+$/.test(line)) entries.push([]);
      else entries.at(-1)?.push(line);
    }
    return entries.map((lines) => lines.join('\n').replace(/\n$/, ''));
  }

  recordedTexts(): string[] {
    return this.recorded.map((line) => line.text);
  }

  async close(): Promise<void> {
    if (!this.#exited) this.pty.kill();
    this.extractor.dispose();
    await rm(join(this.dir, '..'), { recursive: true, force: true });
  }
}

function locate(program: string): string {
  return execFileSync('bash', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
