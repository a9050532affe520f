/**
 * The extractor fed synthetic byte streams: the "shell" here is these tests,
 * which print a prompt and echo keys the way bash/readline does.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ShellCommandExtractor, type InputDecision } from './index.js';

const PROMPT = '\x1b[?2004h$ ';
const ALT_SCREEN_ON = '\x1b[?1049h';
const ALT_SCREEN_OFF = '\x1b[?1049l';

let extractor: ShellCommandExtractor | undefined;

function terminal(cols = 80, rows = 24, scrollback?: number): ShellCommandExtractor {
  extractor = new ShellCommandExtractor(
    scrollback === undefined ? { cols, rows } : { cols, rows, scrollback },
  );
  return extractor;
}

afterEach(() => {
  extractor?.dispose();
  extractor = undefined;
});

async function show(ext: ShellCommandExtractor, ...outputs: string[]): Promise<void> {
  for (const output of outputs) await ext.onOutput(Buffer.from(output, 'utf8'));
}

function press(ext: ShellCommandExtractor, keys: string): InputDecision {
  return ext.onInput(Buffer.from(keys, 'utf8'));
}

/** Each key is judged, then echoed, as a shell in a pty would. */
async function typeEchoed(ext: ShellCommandExtractor, text: string): Promise<void> {
  for (const key of text) {
    expect(press(ext, key)).toEqual({ kind: 'forward', data: Buffer.from(key, 'utf8') });
    await show(ext, key);
  }
}

function submitted(decision: InputDecision): Extract<InputDecision, { kind: 'submit' }> {
  if (decision.kind !== 'submit') throw new Error(`expected a submit, got ${decision.kind}`);
  return decision;
}

describe('ShellCommandExtractor', () => {
  it('submits the typed line at Enter, before anything of the Enter is forwarded', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'echo hello');
    const decision = submitted(press(ext, '\r'));
    expect(decision).toEqual({
      kind: 'submit',
      line: 'echo hello',
      submitted: { text: 'echo hello', fullScreen: false, location: 'prompt', prompt: '$ ' },
      before: Buffer.alloc(0),
      enter: Buffer.from('\r'),
      after: Buffer.alloc(0),
      awaitEcho: false,
    });
  });

  it('waits for the echo of keys sent in earlier packets when Enter overtakes it', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'echo watched-');
    // The last keys go out one packet each, and Enter comes before any of them is echoed.
    for (const key of 'live') expect(press(ext, key).kind).toBe('forward');
    const decision = submitted(press(ext, '\r'));
    expect(decision.awaitEcho).toBe(true);
    expect(decision.line).toBe('echo watched-');
    expect(ext.echo).toBe('waiting');
    await show(ext, 'li');
    expect(ext.echo).toBe('waiting');
    await show(ext, 've');
    expect(ext.echo).toBe('seen');
    expect(ext.currentLine()).toBe('echo watched-live');
  });

  it('waits for output to go quiet when the unechoed keys were editing keys', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'ls -la');
    expect(press(ext, '\x7f').kind).toBe('forward'); // backspace, not yet redrawn
    const decision = submitted(press(ext, '\r'));
    expect(decision.awaitEcho).toBe(true);
    expect(ext.echo).toBe('unpredictable');
    await show(ext, '\b\x1b[K');
    expect(ext.currentLine()).toBe('ls -l');
  });

  it('does not wait when every key of the line is already on the screen', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'uptime');
    expect(submitted(press(ext, '\r')).awaitEcho).toBe(false);
    expect(ext.echo).toBe('none');
  });

  it('reads the line as redrawn after editing keys, prompt removed and trailing spaces trimmed', async () => {
    const ext = terminal();
    await show(ext, 'user@plc-gw:~/logs', '\r\n', PROMPT);
    await typeEchoed(ext, 'cat errros.log   ');
    // readline's redraw after Ctrl-U and retyping: back to the prompt, clear to end of line.
    press(ext, '\x15');
    await show(ext, '\r$ \x1b[K');
    await typeEchoed(ext, 'tail -n 5 errors.log  ');
    expect(submitted(press(ext, '\r')).line).toBe('tail -n 5 errors.log');
  });

  it('counts CR LF once, also when the LF arrives in the next packet, and submits on LF and Ctrl-O', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'ls');
    expect(submitted(press(ext, '\r\n')).enter).toEqual(Buffer.from('\r\n'));
    await show(ext, '\r\nfile\r\n', PROMPT);
    await typeEchoed(ext, 'pwd');
    expect(submitted(press(ext, '\r')).line).toBe('pwd');
    expect(press(ext, '\n')).toEqual({ kind: 'forward', data: Buffer.from('\n') });
    await show(ext, '\r\n/root\r\n', PROMPT);
    await typeEchoed(ext, 'id');
    expect(submitted(press(ext, '\n')).line).toBe('id');
    await show(ext, '\r\nuid=0\r\n', PROMPT);
    await typeEchoed(ext, 'uptime');
    expect(submitted(press(ext, '\x0f'))).toMatchObject({
      line: 'uptime',
      enter: Buffer.from('\x0f'),
    });
  });

  it('submits an empty line as empty', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    expect(submitted(press(ext, '\r')).line).toBe('');
  });

  it('splits a packet at its Enter and predicts the echo of plain text typed with it', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    const decision = submitted(press(ext, 'ls -l\rpwd'));
    expect(decision).toMatchObject({
      line: 'ls -l',
      before: Buffer.from('ls -l'),
      enter: Buffer.from('\r'),
      after: Buffer.from('pwd'),
    });
    expect(ext.echo).toBe('waiting');
    await show(ext, 'ls -');
    expect(ext.echo).toBe('waiting');
    await show(ext, 'l');
    expect(ext.echo).toBe('seen');
    expect(ext.currentLine()).toBe('ls -l');
  });

  it('says the echo is unpredictable when keys before the Enter edit the line', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'echo abc');
    const decision = submitted(press(ext, '\x7f\x7fz\r'));
    expect(decision.before).toEqual(Buffer.from('\x7f\x7fz'));
    expect(ext.echo).toBe('unpredictable');
    await show(ext, '\b\b\x1b[Kz');
    expect(ext.currentLine()).toBe('echo az');
    expect(press(ext, 'x').kind).toBe('forward');
    expect(ext.echo).toBe('none');
  });

  it('joins a wrapped line and keeps a space that falls in the last column', async () => {
    const ext = terminal(20, 5);
    await show(ext, PROMPT);
    // "$ " + 17 characters puts the space in column 20, the last one.
    const line = 'echo 12345678901 second-row-text third-row';
    await typeEchoed(ext, line);
    const decision = submitted(press(ext, '\r'));
    expect(decision.line).toBe(line);
    expect(decision.submitted.location).toBe('prompt');
  });

  it('follows the prompt into the scrollback when a line is taller than the screen', async () => {
    const ext = terminal(10, 3, 50);
    await show(ext, 'old output\r\n', PROMPT);
    const line = `echo ${'x'.repeat(40)} end`;
    await typeEchoed(ext, line);
    expect(submitted(press(ext, '\r')).line).toBe(line);
  });

  it('reads the line again after the terminal was resized and reflowed', async () => {
    const ext = terminal(20, 5);
    await show(ext, PROMPT);
    await typeEchoed(ext, 'echo abcdefghijklmnopqrstuvwxyz');
    ext.resize(40, 5);
    await typeEchoed(ext, ' more');
    expect(submitted(press(ext, '\r')).line).toBe('echo abcdefghijklmnopqrstuvwxyz more');
    expect(() => ext.resize(0, 5)).toThrow(RangeError);
  });

  it('keeps wide and combined characters as shown', async () => {
    const ext = terminal(12, 5);
    await show(ext, PROMPT);
    await typeEchoed(ext, 'echo 日本語 ü');
    expect(submitted(press(ext, '\r')).line).toBe('echo 日本語 ü');
  });

  it('reads a prompt that spans rows and carries colours', async () => {
    const ext = terminal();
    await show(ext, '\x1b[32mroot@rtu-7\x1b[0m:\x1b[34m/opt/scada\x1b[0m\r\n\x1b[1m#\x1b[0m ');
    await typeEchoed(ext, 'systemctl status modbusd');
    expect(submitted(press(ext, '\r')).submitted).toEqual({
      text: 'systemctl status modbusd',
      fullScreen: false,
      location: 'prompt',
      prompt: '# ',
    });
  });

  it('finds the prompt redrawn after a clear screen (Ctrl-L) or a completion listing', async () => {
    const ext = terminal();
    await show(ext, 'earlier\r\n', PROMPT);
    await typeEchoed(ext, 'cat /etc/os');
    press(ext, '\x0c');
    await show(ext, '\x1b[H\x1b[2J$ cat /etc/os');
    await typeEchoed(ext, '-release');
    expect(submitted(press(ext, '\r')).submitted).toMatchObject({
      text: 'cat /etc/os-release',
      location: 'redrawn-prompt',
    });

    await show(ext, '\r\nID=debian\r\n', PROMPT);
    await typeEchoed(ext, 'ls /et');
    press(ext, '\t\t');
    await show(ext, '\r\netc/  etcd/\r\n$ ls /et');
    await typeEchoed(ext, 'cd');
    expect(submitted(press(ext, '\r')).submitted).toMatchObject({
      text: 'ls /etcd',
      location: 'redrawn-prompt',
    });
  });

  it('reads the match of a reverse history search, not the search prompt', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    press(ext, '\x12');
    await show(ext, "\r(reverse-i-search)`': ");
    press(ext, 'sys');
    await show(ext, "\r(reverse-i-search)`sys': systemctl restart plc-bridge\x1b[K");
    expect(submitted(press(ext, '\r')).submitted).toEqual({
      text: 'systemctl restart plc-bridge',
      fullScreen: false,
      location: 'search',
      prompt: "(reverse-i-search)`sys': ",
    });
  });

  it('recognises a prompt redrawn after type-ahead by the prompt text seen before', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'sleep 1');
    submitted(press(ext, '\r'));
    await show(ext, '\r\n');
    // Typed while sleep runs: the tty echoes it, then readline draws prompt and line.
    await typeEchoed(ext, 'ls');
    await show(ext, '\r\n', PROMPT, 'ls');
    expect(submitted(press(ext, '\r')).submitted).toMatchObject({
      text: 'ls',
      location: 'redrawn-prompt',
    });
  });

  it('keeps output that lands inside the line rather than lose the start of the line', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'rm -r');
    await show(ext, '[1]+  Done    make\r\n');
    await typeEchoed(ext, 'f /data');
    expect(submitted(press(ext, '\r')).submitted).toEqual({
      text: 'rm -r[1]+  Done    make\nf /data',
      fullScreen: false,
      location: 'unanchored',
      prompt: '$ ',
    });
  });

  describe('bracketed paste', () => {
    it('does not submit at newlines inside a paste when the shell enabled bracketed paste', async () => {
      const ext = terminal();
      await show(ext, PROMPT);
      const paste = '\x1b[200~echo one\necho two\x1b[201~';
      expect(press(ext, paste)).toEqual({ kind: 'forward', data: Buffer.from(paste) });
      await show(ext, '\x1b[7mecho one\x1b[27m\r\n\r\x1b[7mecho two\x1b[27m');
      expect(submitted(press(ext, '\r')).line).toBe('echo one\necho two');
    });

    it('reads every pasted line even with the cursor moved back to the first one', async () => {
      const ext = terminal();
      await show(ext, PROMPT);
      press(ext, '\x1b[200~echo one\r\rm -rf /\x1b[201~');
      await show(ext, 'echo one\r\n\r\r\n\rrm -rf /');
      press(ext, '\x01');
      await show(ext, '\x1b[2A\r\x1b[2C');
      expect(submitted(press(ext, '\r')).line).toBe('echo one\n\nrm -rf /');
    });

    it('after a clear screen, reads from the first prompt-like row, not a pasted look-alike', async () => {
      const ext = terminal();
      await show(ext, 'earlier\r\n', PROMPT);
      press(ext, '\x1b[200~reboot\n$ echo harmless\x1b[201~');
      await show(ext, 'reboot\r\n\r$ echo harmless');
      press(ext, '\x0c');
      await show(ext, '\x1b[H\x1b[2J$ reboot\r\n\r$ echo harmless');
      expect(submitted(press(ext, '\r')).submitted).toEqual({
        text: 'reboot\n$ echo harmless',
        fullScreen: false,
        location: 'redrawn-prompt',
        prompt: '$ ',
      });
    });

    it('tracks paste markers split across packets', async () => {
      const ext = terminal();
      await show(ext, PROMPT);
      expect(press(ext, '\x1b[20').kind).toBe('forward');
      expect(press(ext, '0~a\nb\x1b[2').kind).toBe('forward');
      expect(press(ext, '01~').kind).toBe('forward');
      await show(ext, 'a\r\n\rb');
      expect(submitted(press(ext, '\r')).line).toBe('a\nb');
    });

    it('treats pasted newlines as Enters when the shell did not ask for bracketed paste', async () => {
      const ext = terminal();
      await show(ext, '$ ');
      const decision = submitted(press(ext, '\x1b[200~echo one\necho two\x1b[201~'));
      expect(decision).toMatchObject({
        line: 'echo one',
        before: Buffer.from('\x1b[200~echo one'),
        enter: Buffer.from('\n'),
        after: Buffer.from('echo two\x1b[201~'),
      });
      expect(ext.echo).toBe('waiting');
    });
  });

  it('reads a line that holds a quoted newline (Ctrl-V Ctrl-J) in full', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'echo ok');
    expect(press(ext, '\x16').kind).toBe('forward');
    expect(press(ext, '\n').kind).toBe('forward');
    await show(ext, '\r\n');
    await typeEchoed(ext, 'reboot');
    expect(submitted(press(ext, '\r')).line).toBe('echo ok\nreboot');
  });

  it('forgets the line at Ctrl-C and anchors the next one on the new prompt', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'shutdown -h');
    expect(press(ext, '\x03')).toEqual({ kind: 'forward', data: Buffer.from('\x03') });
    await show(ext, '^C\r\n', PROMPT);
    await typeEchoed(ext, 'date');
    expect(submitted(press(ext, '\r')).submitted).toMatchObject({
      text: 'date',
      location: 'prompt',
    });
  });

  it('reports input in the alternate screen as full-screen input, then commands again after it', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'vi plc.conf');
    submitted(press(ext, '\r'));
    await show(ext, '\r\n', ALT_SCREEN_ON, '\x1b[H\x1b[2J~\r\n~\r\n');
    expect(ext.inAlternateScreen).toBe(true);
    for (const keys of ['i', 'rm -rf /\r', '\x1b', ':wq\r']) {
      expect(press(ext, keys)).toEqual({ kind: 'fullscreen-input', data: Buffer.from(keys) });
    }
    expect(ext.currentSubmittedLine().text).toBe('');
    await show(ext, ALT_SCREEN_OFF, PROMPT);
    expect(ext.inAlternateScreen).toBe(false);
    await typeEchoed(ext, 'cat plc.conf');
    expect(submitted(press(ext, '\r')).submitted).toMatchObject({
      text: 'cat plc.conf',
      location: 'prompt',
    });
  });

  it('keeps the prompt of a blocked line so the next line is read from it', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    await typeEchoed(ext, 'rm -rf /opt');
    submitted(press(ext, '\r'));
    expect(ext.cancelSubmit()).toEqual(Buffer.from([0x05, 0x15]));
    expect(ShellCommandExtractor.CLEAR_LINE).toEqual(Buffer.from('\x05\x15'));
    // The vendor types on before the shell's redraw of the emptied line arrives.
    expect(press(ext, 'l').kind).toBe('forward');
    await show(ext, '\r$ \x1b[K', 'l');
    await typeEchoed(ext, 's');
    expect(submitted(press(ext, '\r')).submitted).toMatchObject({ text: 'ls', location: 'prompt' });
  });

  it('resolves onOutput once the emulator has processed the bytes, also split UTF-8', async () => {
    const ext = terminal();
    await show(ext, PROMPT);
    const bytes = Buffer.from('ü', 'utf8');
    press(ext, 'x');
    await ext.onOutput(bytes.subarray(0, 1));
    await ext.onOutput(bytes.subarray(1));
    expect(ext.currentLine()).toBe('ü');
  });

  it('refuses a size that is not whole cells', () => {
    expect(() => new ShellCommandExtractor({ cols: 1.5, rows: 24 })).toThrow(RangeError);
  });

  describe('resting (an idle shell gives up its terminal emulator)', () => {
    it('rests at a prompt and reads the next line exactly as if it never had', async () => {
      const ext = terminal();
      await show(ext, 'motd line\r\n', PROMPT);
      await typeEchoed(ext, 'uptime');
      submitted(press(ext, '\r'));
      await show(ext, '\r\n 10:00 up 3 days\r\n', PROMPT);
      expect(ext.rest()).toBe(true);
      expect(ext.resting).toBe(true);
      expect(() => ext.currentLine()).toThrow(/resting/);
      await ext.wake();
      expect(ext.resting).toBe(false);
      await typeEchoed(ext, 'cat errros');
      press(ext, '\x7f\x7f\x7f');
      await show(ext, '\b\b\b\x1b[K');
      await typeEchoed(ext, 'ors.log');
      expect(submitted(press(ext, '\r')).submitted).toEqual({
        text: 'cat errors.log',
        fullScreen: false,
        location: 'prompt',
        prompt: '$ ',
      });
    });

    it('is woken by output, which lands after the redrawn screen', async () => {
      const ext = terminal();
      await show(ext, PROMPT);
      expect(ext.rest()).toBe(true);
      await show(ext, '\r\nbackground job done\r\n', PROMPT);
      expect(ext.resting).toBe(false);
      await typeEchoed(ext, 'whoami');
      expect(submitted(press(ext, '\r')).submitted.location).toBe('prompt');
      expect(ext.currentLine()).toBe('whoami');
    });

    it('refuses to rest while a line is being typed, and the line survives', async () => {
      const ext = terminal();
      await show(ext, PROMPT);
      await typeEchoed(ext, 'systemctl sta');
      expect(ext.rest()).toBe(false);
      expect(ext.resting).toBe(false);
      await typeEchoed(ext, 'tus');
      expect(submitted(press(ext, '\r')).line).toBe('systemctl status');
    });

    it('loses no output handed to it just before it rests', async () => {
      const ext = terminal();
      // Whether the output is parsed yet or not, resting must keep it on the screen.
      const parsing = ext.onOutput(Buffer.from(`last login: today\r\n${PROMPT}`));
      ext.rest();
      await parsing;
      await ext.wake();
      await typeEchoed(ext, 'id');
      expect(submitted(press(ext, '\r')).submitted).toMatchObject({
        text: 'id',
        location: 'prompt',
        prompt: '$ ',
      });
    });

    it('keeps bracketed paste mode, wrapped prompts and the alternate screen across a rest', async () => {
      const ext = terminal(20, 5);
      // A prompt longer than a row wraps onto the next.
      await show(ext, '\x1b[?2004hplant-a/packaging-line-3$ ');
      expect(ext.rest()).toBe(true);
      await ext.wake();
      // Pasted newlines stay inside the line only while the shell's paste mode is known.
      expect(press(ext, '\x1b[200~echo a\recho b\x1b[201~')).toMatchObject({ kind: 'forward' });
      await show(ext, 'echo a\r\necho b');
      expect(submitted(press(ext, '\r')).line).toBe('echo a\necho b');

      await show(ext, '\r\n', ALT_SCREEN_ON, 'top - 10:00');
      expect(ext.rest()).toBe(true);
      await ext.wake();
      expect(ext.inAlternateScreen).toBe(true);
      expect(press(ext, 'q')).toEqual({ kind: 'fullscreen-input', data: Buffer.from('q') });
      await show(ext, ALT_SCREEN_OFF);
      expect(ext.inAlternateScreen).toBe(false);
    });

    it('applies a resize that arrived while resting when it wakes', async () => {
      const ext = terminal(80, 24);
      await show(ext, PROMPT);
      expect(ext.rest()).toBe(true);
      ext.resize(40, 10);
      await ext.wake();
      await typeEchoed(ext, 'x'.repeat(45));
      // 2 + 45 cells wrap at 40 columns: the line is still read whole.
      expect(submitted(press(ext, '\r')).line).toBe('x'.repeat(45));
    });
  });
});
