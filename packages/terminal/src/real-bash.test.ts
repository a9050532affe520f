/**
 * The extractor against a real bash in a real pseudo-terminal, so readline
 * does its real redraws. For every scenario the lines recorded before their
 * Enter must equal what bash ran, as bash's own history file tells.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PtyShell } from './testing/pty-shell.js';

const UP = '\x1b[A';
const LEFT = '\x1b[D';
const BACKSPACE = '\x7f';
const CTRL_U = '\x15';
const CTRL_W = '\x17';
const CTRL_R = '\x12';
const TAB = '\t';

let shell: PtyShell | undefined;

/** A word per packet: readline's redraws are the point, not per-character echo. */
function words(text: string): string[] {
  return text.split(/(?= )/);
}

/** Typed a few characters per packet, like a fast typist over a slow link. */
function chunks(text: string, size: number): string[] {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  return parts;
}

async function bash(options: { cols?: number; rows?: number } = {}): Promise<PtyShell> {
  shell = await PtyShell.start(options);
  return shell;
}

/**
 * The recorded lines are exactly what bash ran, in order. bash keeps a
 * completion's trailing space in its history, the recorder trims it; a
 * multi-line submission is one record but one history entry per line.
 */
async function expectRecordedAsRun(sh: PtyShell, expected: string[]): Promise<void> {
  const ran = (await sh.history()).map((entry) => entry.trimEnd());
  expect(ran).toEqual(expected);
  expect(sh.recordedTexts().flatMap((text) => text.split('\n'))).toEqual(ran);
}

afterEach(async () => {
  await shell?.close();
  shell = undefined;
});

describe('ShellCommandExtractor with a real bash', () => {
  it('records a plain command, typed key by key, before bash runs it', async () => {
    const sh = await bash();
    await sh.run(...'echo hello', '\r');
    expect(sh.output).toContain('hello\r\n');
    await expectRecordedAsRun(sh, ['echo hello']);
    expect(sh.recorded[0]?.location).toBe('prompt');
  });

  it('records the line after backspaces, Ctrl-U and Ctrl-W as readline redrew it', async () => {
    const sh = await bash();
    await sh.run(...words('echo helo'), BACKSPACE, BACKSPACE, ...words('llo'), '\r');
    await sh.run(...words('rm -rf /tmp/nothing'), CTRL_U, ...words('echo retyped'), '\r');
    await sh.run(...words('echo one two three'), CTRL_W, CTRL_W, ...words('four'), '\r');
    await sh.run(...words('echo mid'), LEFT, LEFT, LEFT, 'X', '\r');
    await expectRecordedAsRun(sh, ['echo hello', 'echo retyped', 'echo one four', 'echo Xmid']);
  });

  it('records a recalled history line after editing it', async () => {
    const sh = await bash();
    await sh.run(...words('echo first'), '\r');
    await sh.run(UP, ...words(' again'), '\r');
    await sh.run(UP, UP, UP, ...Array<string>(5).fill(BACKSPACE), ...words('twice'), '\r');
    await sh.run(UP, UP, UP, '\x1b[B', '\r');
    await expectRecordedAsRun(sh, [
      'echo first',
      'echo first again',
      'echo twice',
      'echo first again',
    ]);
  });

  it('records tab completions of a command and of a file name', async () => {
    const sh = await bash();
    await writeFile(join(sh.dir, 'zebra-unique-payload.txt'), 'x');
    await writeFile(join(sh.dir, 'zebra-unique-other.txt'), 'x');
    await sh.run('e', 'c', TAB, ...words('hi'), '\r');
    await sh.run(...words('echo zeb'), TAB, 'p', TAB, '\r');
    await expectRecordedAsRun(sh, ['echo hi', 'echo zebra-unique-payload.txt']);
  });

  it('finds the redrawn prompt after a completion listing and after Ctrl-L', async () => {
    const sh = await bash();
    await writeFile(join(sh.dir, 'zebra-unique-payload.txt'), 'x');
    await writeFile(join(sh.dir, 'zebra-unique-other.txt'), 'x');
    await sh.run(...words('echo zebra-unique-'), TAB, TAB, 'o', TAB, '\r');
    await sh.run(...words('echo cleared'), '\x0c', ...words(' screen'), '\r');
    await expectRecordedAsRun(sh, ['echo zebra-unique-other.txt', 'echo cleared screen']);
    expect(sh.recorded.map((line) => line.location)).toEqual(['redrawn-prompt', 'redrawn-prompt']);
  });

  it('records the line chosen by reverse history search', async () => {
    const sh = await bash();
    await sh.run(...words('echo needle'), '\r');
    await sh.run(...words('echo other'), '\r');
    await sh.run(CTRL_R, ...words('need'), '\r');
    await expectRecordedAsRun(sh, ['echo needle', 'echo other', 'echo needle']);
    expect(sh.recorded[2]?.location).toBe('search');
  });

  it('records a bracketed paste of two lines as the one multi-line command bash runs', async () => {
    const sh = await bash();
    await sh.run(`bind 'set enable-bracketed-paste on'`, '\r');
    await sh.run('\x1b[200~echo pasted one\necho pasted two\x1b[201~', '\r');
    await expectRecordedAsRun(sh, [
      `bind 'set enable-bracketed-paste on'`,
      'echo pasted one',
      'echo pasted two',
    ]);
    expect(sh.recordedTexts()[1]).toBe('echo pasted one\necho pasted two');
    expect(sh.output).toContain('pasted one\r\npasted two\r\n');
  });

  it('records each line of a paste without bracketed paste, and keys sent with the Enter', async () => {
    const sh = await bash();
    await sh.run(`bind 'set enable-bracketed-paste off'`, '\r');
    await sh.run('echo pasted one\recho pasted two\r');
    await sh.run('echo whole packet\r');
    await expectRecordedAsRun(sh, [
      `bind 'set enable-bracketed-paste off'`,
      'echo pasted one',
      'echo pasted two',
      'echo whole packet',
    ]);
  });

  it('joins a line that wraps past the terminal width', async () => {
    const sh = await bash({ cols: 40 });
    const long = `echo ${'abcdefghij '.repeat(9)}end`;
    await sh.run(...chunks(long, 7), '\r');
    // Edited in the middle of the second row, which makes readline redraw across rows.
    await sh.run(UP, ...Array<string>(20).fill(LEFT), BACKSPACE, BACKSPACE, 'Z', '\r');
    const edited = long.slice(0, long.length - 22) + 'Z' + long.slice(long.length - 20);
    await expectRecordedAsRun(sh, [long, edited]);
  });

  it('reports input inside full-screen programs as input, never as commands', async () => {
    const sh = await bash({ rows: 10 });
    await writeFile(join(sh.dir, 'notes.txt'), 'line one\nline two\n');
    await sh.type(...words('less notes.txt'), '\r');
    await sh.waitForAlternateScreen();
    await sh.type('j', '/two\r');
    await sh.run('q');
    expect(sh.extractor.inAlternateScreen).toBe(false);
    await sh.type(...words('vi -u NONE -N -n notes.txt'), '\r');
    await sh.waitForAlternateScreen();
    await sh.type('i', 'rm -rf /\r', '\x1b', ':q!\r');
    await sh.waitForPrompt();
    await sh.run(...words('echo back'), '\r');
    await expectRecordedAsRun(sh, ['less notes.txt', 'vi -u NONE -N -n notes.txt', 'echo back']);
    expect(sh.fullScreenInput).toEqual(['j', '/two\r', 'q', 'i', 'rm -rf /\r', '\x1b', ':q!\r']);
  });

  it('records continuation lines after the PS2 prompt, and nothing for Ctrl-C', async () => {
    const sh = await bash();
    await sh.run(...words('echo ab'), '\x03');
    await sh.continueLine(...words('for w in a b'), '\r');
    await sh.continueLine(...words('do echo $w'), '\r');
    await sh.run(...words('done'), '\r');
    const ran = await sh.history();
    // bash stores the loop as one entry; the recorder has each line as typed.
    expect(ran).toEqual(['for w in a b; do echo $w; done']);
    expect(sh.recorded.map(({ prompt, text }) => [prompt, text])).toEqual([
      ['$ ', 'for w in a b'],
      ['> ', 'do echo $w'],
      ['> ', 'done'],
    ]);
  });

  it('empties a blocked line on the asset, so neither it nor a hidden second line runs', async () => {
    const sh = await bash();
    sh.blockIf = /rm -rf/;
    await sh.type(...words('echo visible; rm -rf ./nothing'), LEFT, LEFT, '\r');
    // A line that hides its second line behind a quoted newline (Ctrl-V Ctrl-J).
    await sh.type(...words('echo harmless'), '\x16', '\n', ...words('rm -rf ./hidden'), '\r');
    await sh.run(...words('echo after'), '\r');
    expect(sh.blocked).toEqual([
      'echo visible; rm -rf ./nothing',
      'echo harmless\nrm -rf ./hidden',
    ]);
    await expectRecordedAsRun(sh, ['echo after']);
    expect(sh.recorded[0]?.location).toBe('prompt');
  });

  it('keeps the start of a line when a background job prints into it, and says so', async () => {
    const sh = await bash();
    await sh.run('(sleep 0.4; echo BG_$((6*7))) &', '\r');
    await sh.type('echo fr');
    await sh.waitForOutput('BG_42');
    await sh.run(...words('om the start'), '\r');
    await sh.run(...words('wait'), '\r');
    const ran = await sh.history();
    expect(ran).toEqual(['(sleep 0.4; echo BG_$((6*7))) &', 'echo from the start', 'wait']);
    expect(sh.recorded[1]).toEqual({
      text: 'echo frBG_42\nom the start',
      fullScreen: false,
      location: 'unanchored',
      prompt: '$ ',
    });
  });
});
