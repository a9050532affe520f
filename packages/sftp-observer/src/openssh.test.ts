// Real clients against the real OpenSSH sftp-server, with the observer in the
// middle (src/testing/sftp-relay.ts): OpenSSH's `sftp` and `scp` connect to
// the relay directly with -D, no sshd involved.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@airlock/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileTransferSummary, SftpOperation, SftpOperationResult } from './index.js';

const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
const RELAY = fileURLToPath(new URL('./testing/sftp-relay.ts', import.meta.url));
const TSX = join(REPO_ROOT, 'node_modules/.bin/tsx');
const run = promisify(execFile);

type JournalLine =
  | { event: 'operation'; op: SftpOperation }
  | { event: 'result'; result: SftpOperationResult }
  | { event: 'transfer'; summary: FileTransferSummary }
  | { event: 'error'; message: string };

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('observing OpenSSH sftp and scp against OpenSSH sftp-server', () => {
  let dir: string;
  let local: string;
  let remote: string;
  let journal: string;
  let relayCommand: string;
  let original: Buffer;

  beforeAll(async () => {
    if (!existsSync(SFTP_SERVER))
      throw new Error(`${SFTP_SERVER} is missing: apt-get install openssh-sftp-server`);
    dir = await mkdtemp(join(tmpdir(), 'airlock-sftp-'));
    local = join(dir, 'local');
    remote = join(dir, 'remote');
    journal = join(dir, 'journal.jsonl');
    await mkdir(local);
    await mkdir(remote);
    original = randomBytes(3 * 1024 * 1024);
    await writeFile(join(local, 'firmware.bin'), original);
    // scp -D takes a program path without arguments; sftp -D would split a command line.
    relayCommand = join(dir, 'relay.sh');
    await writeFile(
      relayCommand,
      `#!/bin/sh\nexec '${TSX}' '${RELAY}' '${journal}' '${SFTP_SERVER}' -d '${remote}'\n`,
    );
    await chmod(relayCommand, 0o755);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function session(tool: 'sftp' | 'scp', args: string[]): Promise<JournalLine[]> {
    await writeFile(journal, '');
    await run(tool, ['-q', '-D', relayCommand, ...args], { cwd: local, timeout: 20_000 });
    const text = await readFile(journal, 'utf8');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as JournalLine);
  }

  const ops = (lines: JournalLine[]) =>
    lines.flatMap((l) => (l.event === 'operation' ? [l.op] : []));
  const transfers = (lines: JournalLine[]) =>
    lines.flatMap((l) => (l.event === 'transfer' ? [l.summary] : []));

  it('records an sftp batch: each operation with its paths, in order, before it ran', async () => {
    const batch = join(dir, 'batch');
    await writeFile(
      batch,
      [
        'mkdir incoming',
        'put firmware.bin incoming/upload.bin',
        'chmod 600 incoming/upload.bin',
        'rename incoming/upload.bin incoming/plc.bin',
        'ln -s plc.bin incoming/current',
        'get incoming/plc.bin roundtrip.bin',
        'mkdir scratch',
        'rmdir scratch',
        'put firmware.bin junk.bin',
        'rm junk.bin',
      ].join('\n'),
    );
    const lines = await session('sftp', ['-b', batch]);
    expect(lines.filter((l) => l.event === 'error')).toEqual([]);

    // The file went through unchanged, and the symlink went where the vendor asked.
    expect(sha256(await readFile(join(local, 'roundtrip.bin')))).toBe(sha256(original));
    expect(await readlink(join(remote, 'incoming/current'))).toBe('plc.bin');

    const r = (path: string) => join(remote, path);
    const stateChanging = ops(lines).filter(
      (op) => !['stat', 'lstat', 'realpath'].includes(op.kind),
    );
    expect(stateChanging).toEqual([
      expect.objectContaining({ kind: 'extended', name: 'limits@openssh.com' }),
      expect.objectContaining({ kind: 'mkdir', path: r('incoming') }),
      expect.objectContaining({
        kind: 'open',
        path: r('incoming/upload.bin'),
        flags: expect.objectContaining({ write: true, create: true, truncate: true }),
      }),
      expect.objectContaining({
        kind: 'setstat',
        path: r('incoming/upload.bin'),
        attrs: { permissions: 0o600 },
      }),
      expect.objectContaining({
        kind: 'extended',
        name: 'posix-rename@openssh.com',
        path: r('incoming/upload.bin'),
        target: r('incoming/plc.bin'),
      }),
      expect.objectContaining({ kind: 'symlink', path: r('incoming/current'), target: 'plc.bin' }),
      expect.objectContaining({
        kind: 'open',
        path: r('incoming/plc.bin'),
        flags: expect.objectContaining({ read: true, write: false }),
      }),
      expect.objectContaining({ kind: 'mkdir', path: r('scratch') }),
      expect.objectContaining({ kind: 'rmdir', path: r('scratch') }),
      expect.objectContaining({ kind: 'open', path: r('junk.bin') }),
      expect.objectContaining({ kind: 'remove', path: r('junk.bin') }),
    ]);

    // Write-ahead, as the relay does it: every answered operation was journaled before it was forwarded.
    lines.forEach((line, index) => {
      if (line.event !== 'result') return;
      const recordedAt = lines.findIndex(
        (l) => l.event === 'operation' && l.op.requestId === line.result.requestId,
      );
      expect(recordedAt).toBeGreaterThanOrEqual(0);
      expect(recordedAt).toBeLessThan(index);
    });

    const [upload, download, junk] = transfers(lines);
    expect(upload).toMatchObject({
      path: r('incoming/upload.bin'),
      direction: 'upload',
      bytesWritten: original.length,
      sha256Written: sha256(original),
      sequential: true,
      status: 'ok',
    });
    expect(download).toMatchObject({
      path: r('incoming/plc.bin'),
      direction: 'download',
      bytesRead: original.length,
      sha256Read: sha256(original),
      sequential: true,
      status: 'ok',
    });
    expect(junk).toMatchObject({ path: r('junk.bin'), sha256Written: sha256(original) });
    expect(transfers(lines)).toHaveLength(3);
  });

  it('says a resumed download is not one stream rather than hashing a part of the file', async () => {
    await writeFile(join(remote, 'resume.bin'), original);
    await writeFile(join(local, 'resume.bin'), original.subarray(0, 1024 * 1024));
    const batch = join(dir, 'batch-resume');
    await writeFile(batch, 'reget resume.bin resume.bin\n');
    const lines = await session('sftp', ['-b', batch]);
    expect(sha256(await readFile(join(local, 'resume.bin')))).toBe(sha256(original));
    expect(transfers(lines)).toEqual([
      expect.objectContaining({
        direction: 'download',
        bytesRead: original.length - 1024 * 1024,
        sha256Read: null,
        sequential: false,
        status: 'ok',
      }),
    ]);
  });

  it('records scp (OpenSSH ≥ 9 speaks SFTP) uploads and downloads with their SHA-256', async () => {
    const up = await session('scp', ['firmware.bin', 'x:scp-copy.bin']);
    const down = await session('scp', ['x:scp-copy.bin', 'scp-back.bin']);
    expect(sha256(await readFile(join(remote, 'scp-copy.bin')))).toBe(sha256(original));
    expect(sha256(await readFile(join(local, 'scp-back.bin')))).toBe(sha256(original));
    expect(ops(up)).toContainEqual(expect.objectContaining({ kind: 'open', path: 'scp-copy.bin' }));
    expect(transfers(up)).toEqual([
      expect.objectContaining({
        path: 'scp-copy.bin',
        direction: 'upload',
        bytesWritten: original.length,
        sha256Written: sha256(original),
        status: 'ok',
      }),
    ]);
    expect(transfers(down)).toEqual([
      expect.objectContaining({
        path: 'scp-copy.bin',
        direction: 'download',
        bytesRead: original.length,
        sha256Read: sha256(original),
        status: 'ok',
      }),
    ]);
  });
});
