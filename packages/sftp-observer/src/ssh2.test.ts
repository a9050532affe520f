// The gateway's shape, in one process: ssh2's SFTP client → SSH over loopback
// TCP → an ssh2 Server whose raw "sftp" subsystem channel is spliced through
// an SftpObserver to a real OpenSSH sftp-server (the asset). Each operation
// is made "durable" in an asynchronous store before its packet is forwarded.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Server, utils, type SFTPWrapper, type ServerChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SftpObserver, type FileTransferSummary, type SftpOperation } from './index.js';

const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Recorded {
  op: SftpOperation;
  /** Whether the operation's path existed on the asset when its record became durable. */
  pathExisted: boolean;
}

/** What the gateway's SftpSplice does, minus PostgreSQL. */
function splice(
  channel: ServerChannel,
  asset: ChildProcessWithoutNullStreams,
  recorded: Recorded[],
  transfers: FileTransferSummary[],
  errors: string[],
) {
  const observer = new SftpObserver({
    onOperation: () => undefined,
    onTransfer: (summary) => transfers.push(summary),
    onProtocolError: (message) => {
      errors.push(message);
      channel.close();
    },
  });
  let chain = Promise.resolve();
  channel.on('data', (data: Buffer) => {
    const segments = observer.fromClient(data);
    chain = chain.then(async () => {
      for (const segment of segments) {
        if (segment.operation !== undefined) {
          const op = segment.operation;
          await sleep(1); // the audit store's commit
          recorded.push({
            op,
            pathExisted: 'path' in op && op.path !== undefined && existsSync(op.path),
          });
        }
        if (!asset.stdin.write(segment.data)) await once(asset.stdin, 'drain');
      }
    });
  });
  channel.on('end', () => void chain.then(() => asset.stdin.end()));
  asset.stdout.on('data', (data: Buffer) => channel.write(observer.fromServer(data)));
  asset.on('exit', () => {
    observer.end();
    channel.exit(0);
    channel.end();
  });
}

describe('observing ssh2 SFTP client traffic spliced to OpenSSH sftp-server over SSH', () => {
  let dir: string;
  let remote: string;
  let server: Server;
  let client: Client;
  let sftp: SFTPWrapper;
  const recorded: Recorded[] = [];
  const transfers: FileTransferSummary[] = [];
  const errors: string[] = [];
  const assets: ChildProcessWithoutNullStreams[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-sftp-ssh2-'));
    remote = join(dir, 'remote');
    await mkdir(remote);
    const hostKey = utils.generateKeyPairSync('ed25519');
    server = new Server({ hostKeys: [hostKey.private] }, (connection) => {
      connection.on('authentication', (ctx) => ctx.accept());
      connection.on('ready', () => {
        connection.on('session', (acceptSession) => {
          acceptSession().on('subsystem', (accept, reject, info) => {
            if (info.name !== 'sftp') return reject();
            const asset = spawn(SFTP_SERVER, ['-d', remote]);
            assets.push(asset);
            splice(accept(), asset, recorded, transfers, errors);
          });
        });
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    client = new Client();
    client.connect({ host: '127.0.0.1', port, username: 'vendor', hostVerifier: () => true });
    await once(client, 'ready');
    sftp = await new Promise<SFTPWrapper>((resolve, reject) =>
      client.sftp((err, wrapper) => (err ? reject(err) : resolve(wrapper))),
    );
  });

  afterAll(async () => {
    client?.end();
    for (const asset of assets) if (asset.exitCode === null) asset.kill();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  const call = <T = void>(
    fn: (cb: (err: Error | null | undefined, value?: T) => void) => void,
  ): Promise<T | undefined> =>
    new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

  it('records pipelined fastPut/fastGet with SHA-256, and every operation before the asset acts on it', async () => {
    const original = randomBytes(3 * 1024 * 1024 + 12345);
    const local = join(dir, 'firmware.bin');
    const back = join(dir, 'back.bin');
    await writeFile(local, original);
    const r = (path: string) => join(remote, path);

    await call((cb) => sftp.mkdir(r('incoming'), cb));
    await call((cb) =>
      sftp.fastPut(local, r('incoming/firmware.bin'), { concurrency: 64, chunkSize: 32768 }, cb),
    );
    await call((cb) => sftp.rename(r('incoming/firmware.bin'), r('incoming/plc.bin'), cb));
    await call((cb) =>
      sftp.fastGet(r('incoming/plc.bin'), back, { concurrency: 64, chunkSize: 32768 }, cb),
    );
    await call((cb) => sftp.unlink(r('incoming/plc.bin'), cb));
    await call((cb) => sftp.rmdir(r('incoming'), cb));
    expect(sha256(await readFile(back))).toBe(sha256(original));
    expect(errors).toEqual([]);

    const uploaded = {
      read: false,
      write: true,
      append: false,
      create: true,
      truncate: true,
      exclusive: false,
    };
    const downloaded = {
      read: true,
      write: false,
      append: false,
      create: false,
      truncate: false,
      exclusive: false,
    };
    // ssh2 asks for limits@openssh.com on its own; the vendor's actions follow.
    expect(recorded.shift()?.op).toMatchObject({ kind: 'extended', name: 'limits@openssh.com' });
    expect(
      recorded.map(({ op, pathExisted }) => [
        op.kind,
        'path' in op ? op.path : undefined,
        pathExisted,
      ]),
    ).toEqual([
      ['mkdir', r('incoming'), false],
      ['open', r('incoming/firmware.bin'), false],
      ['rename', r('incoming/firmware.bin'), true],
      ['open', r('incoming/plc.bin'), true],
      ['remove', r('incoming/plc.bin'), true],
      ['rmdir', r('incoming'), true],
    ]);
    const [mkdirOp, upload, rename, download] = recorded.map(({ op }) => op);
    expect(mkdirOp).toEqual({ kind: 'mkdir', requestId: expect.any(Number), path: r('incoming') });
    expect(upload).toMatchObject({ flags: uploaded });
    expect(rename).toMatchObject({ target: r('incoming/plc.bin') });
    expect(download).toMatchObject({ flags: downloaded });

    expect(transfers).toEqual([
      expect.objectContaining({
        path: r('incoming/firmware.bin'),
        direction: 'upload',
        bytesWritten: original.length,
        sha256Written: sha256(original),
        sequential: true,
        status: 'ok',
      }),
      expect.objectContaining({
        path: r('incoming/plc.bin'),
        direction: 'download',
        bytesRead: original.length,
        sha256Read: sha256(original),
        sequential: true,
        status: 'ok',
      }),
    ]);
  });
});
