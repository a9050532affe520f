import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FX, FXF, FXP } from './constants.js';
import {
  SftpObserver,
  type FileTransferSummary,
  type SftpObserverOptions,
  type SftpOperation,
  type SftpOperationResult,
} from './index.js';
import { client, packet, server, str, u32, u64 } from './testing/sftp-encoder.js';

type Step = { from: 'client' | 'server'; bytes: Buffer };
type Event =
  | { event: 'operation'; op: SftpOperation }
  | { event: 'transfer'; summary: FileTransferSummary }
  | { event: 'error'; message: string }
  | { event: 'result'; result: SftpOperationResult };

const c = (...packets: Buffer[]): Step => ({ from: 'client', bytes: Buffer.concat(packets) });
const s = (...packets: Buffer[]): Step => ({ from: 'server', bytes: Buffer.concat(packets) });
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

function observe(options: SftpObserverOptions = {}) {
  const events: Event[] = [];
  const observer = new SftpObserver(
    {
      onOperation: (op) => events.push({ event: 'operation', op }),
      onTransfer: (summary) => events.push({ event: 'transfer', summary }),
      onProtocolError: (message) => events.push({ event: 'error', message }),
      onOperationResult: (result) => events.push({ event: 'result', result }),
    },
    options,
  );
  return { observer, events };
}

/**
 * Plays a conversation through one observer, cutting each step into pieces
 * with `cut`, and returns what a gateway would see: callbacks, the bytes it
 * would forward to the server, and each forwarded segment's operation.
 */
function play(
  steps: Step[],
  cut: (bytes: Buffer, stepIndex: number) => Buffer[],
  options: SftpObserverOptions = {},
) {
  const { observer, events } = observe(options);
  const forwarded: Buffer[] = [];
  const segments: { bytes: Buffer; op: SftpOperation | undefined }[] = [];
  steps.forEach((step, index) => {
    for (const piece of cut(step.bytes, index)) {
      if (step.from === 'server') {
        expect(observer.fromServer(piece)).toBe(piece);
        continue;
      }
      for (const segment of observer.fromClient(piece)) {
        forwarded.push(segment.data);
        segments.push({ bytes: segment.data, op: segment.operation });
      }
    }
  });
  return { observer, events, forwarded: Buffer.concat(forwarded), segments };
}

const whole = (bytes: Buffer): Buffer[] => [bytes];
const bytewise = (bytes: Buffer): Buffer[] => [...bytes].map((b) => Buffer.from([b]));

const content = randomBytes(2500);
const W = FXF.WRITE | FXF.CREAT | FXF.TRUNC;

/** An upload, a download with replies out of order and a short read, and path operations. */
const session: Step[] = [
  c(client.init()),
  s(server.version()),
  c(client.path(FXP.REALPATH, 1, '.')),
  s(server.name(1, ['/home/vendor'])),
  c(client.open(2, '/home/vendor/plc.bin', W)),
  s(server.handle(2, 'h0')),
  c(
    client.write(3, 'h0', 0, content.subarray(0, 1000)),
    client.write(4, 'h0', 1000, content.subarray(1000, 2000)),
    client.write(5, 'h0', 2000, content.subarray(2000)),
  ),
  s(server.status(3, FX.OK), server.status(4, FX.OK), server.status(5, FX.OK)),
  c(client.fsetstat(6, 'h0', 0o100644), client.close(7, 'h0')),
  s(server.status(6, FX.OK), server.status(7, FX.OK)),
  c(client.open(8, '/home/vendor/plc.bin', FXF.READ)),
  s(server.handle(8, 'h1')),
  c(client.fstat(9, 'h1')),
  s(server.attrs(9)),
  c(
    client.read(10, 'h1', 0, 1000),
    client.read(11, 'h1', 1000, 1000),
    client.read(12, 'h1', 2000, 1000),
    client.read(13, 'h1', 3000, 1000),
  ),
  // 11 comes back short (600 of 1000 bytes); 12 and 13 first; the client asks again for the rest.
  s(
    server.data(12, content.subarray(2000)),
    server.status(13, FX.EOF),
    server.data(11, content.subarray(1000, 1600)),
    server.data(10, content.subarray(0, 1000)),
  ),
  c(client.read(14, 'h1', 1600, 400)),
  s(server.data(14, content.subarray(1600, 2000))),
  c(client.close(15, 'h1')),
  s(server.status(15, FX.OK)),
  c(
    client.rename(16, '/home/vendor/plc.bin', '/home/vendor/plc.old'),
    client.mkdir(17, '/home/vendor/new'),
    client.extended(
      18,
      'posix-rename@openssh.com',
      str('/home/vendor/plc.old'),
      str('/home/vendor/new/plc'),
    ),
    client.symlink(19, '/home/vendor/new/plc', '/home/vendor/current'),
    client.path(FXP.REMOVE, 20, '/home/vendor/new/plc'),
    client.path(FXP.RMDIR, 21, '/home/vendor/new'),
  ),
  s(
    server.status(16, FX.OK),
    server.status(17, FX.OK),
    server.status(18, FX.OK),
    server.status(19, FX.OK),
    server.status(20, FX.OK),
    server.status(21, FX.PERMISSION_DENIED, 'Permission denied'),
  ),
];

const expectedOperations: SftpOperation[] = [
  { kind: 'realpath', requestId: 1, path: '.' },
  {
    kind: 'open',
    requestId: 2,
    path: '/home/vendor/plc.bin',
    flags: {
      read: false,
      write: true,
      append: false,
      create: true,
      truncate: true,
      exclusive: false,
    },
  },
  {
    kind: 'fsetstat',
    requestId: 6,
    path: '/home/vendor/plc.bin',
    attrs: { permissions: 0o100644 },
  },
  {
    kind: 'open',
    requestId: 8,
    path: '/home/vendor/plc.bin',
    flags: {
      read: true,
      write: false,
      append: false,
      create: false,
      truncate: false,
      exclusive: false,
    },
  },
  { kind: 'rename', requestId: 16, path: '/home/vendor/plc.bin', target: '/home/vendor/plc.old' },
  { kind: 'mkdir', requestId: 17, path: '/home/vendor/new' },
  {
    kind: 'extended',
    requestId: 18,
    name: 'posix-rename@openssh.com',
    path: '/home/vendor/plc.old',
    target: '/home/vendor/new/plc',
  },
  // OpenSSH order: target first, then the link to create.
  { kind: 'symlink', requestId: 19, path: '/home/vendor/current', target: '/home/vendor/new/plc' },
  { kind: 'remove', requestId: 20, path: '/home/vendor/new/plc' },
  { kind: 'rmdir', requestId: 21, path: '/home/vendor/new' },
];

const operations = (events: Event[]) =>
  events.flatMap((e) => (e.event === 'operation' ? [e.op] : []));
const transfers = (events: Event[]) =>
  events.flatMap((e) => (e.event === 'transfer' ? [e.summary] : []));
const errors = (events: Event[]) => events.flatMap((e) => (e.event === 'error' ? [e.message] : []));
const clientBytes = (steps: Step[]) =>
  Buffer.concat(steps.filter((st) => st.from === 'client').map((st) => st.bytes));

describe('SftpObserver on a hand-built session', () => {
  const reference = play(session, whole);

  it('records each state-changing or revealing request, in order, with its paths', () => {
    expect(errors(reference.events)).toEqual([]);
    expect(operations(reference.events)).toEqual(expectedOperations);
  });

  it('summarises the upload and the download with sizes and SHA-256 of the content', () => {
    const [upload, download] = transfers(reference.events);
    expect(upload).toMatchObject({
      path: '/home/vendor/plc.bin',
      direction: 'upload',
      bytesWritten: 2500,
      bytesRead: 0,
      sha256Written: sha256(content),
      sha256Read: null,
      sequential: true,
      status: 'ok',
      openRequestId: 2,
    });
    // Replies arrived 12, 11 (short), 10, then 14 filled the gap: still one contiguous stream.
    expect(download).toMatchObject({
      path: '/home/vendor/plc.bin',
      direction: 'download',
      bytesWritten: 0,
      bytesRead: 2500,
      sha256Written: null,
      sha256Read: sha256(content),
      sequential: true,
      status: 'ok',
      openRequestId: 8,
    });
    expect(transfers(reference.events)).toHaveLength(2);
  });

  it('reports the outcome of each recorded operation', () => {
    const results = reference.events.flatMap((e) => (e.event === 'result' ? [e.result] : []));
    expect(results.map((r) => r.requestId)).toEqual(expectedOperations.map((op) => op.requestId));
    expect(results.at(-1)).toEqual({
      requestId: 21,
      kind: 'rmdir',
      ok: false,
      code: FX.PERMISSION_DENIED,
      message: 'Permission denied',
    });
    expect(results.slice(0, -1).every((r) => r.ok)).toBe(true);
  });

  it('forwards every client byte, each operation alone in its segment and only its own packet', () => {
    expect(reference.forwarded.equals(clientBytes(session))).toBe(true);
    const opSegments = reference.segments.filter((segment) => segment.op !== undefined);
    expect(opSegments.map((segment) => segment.op)).toEqual(expectedOperations);
    for (const segment of opSegments) {
      // One packet: its length field covers exactly the rest of the segment.
      expect(segment.bytes.readUInt32BE(0) + 4).toBe(segment.bytes.length);
    }
    // The three WRITEs travel together: they carry no operation.
    const writes = reference.segments.find((segment) => segment.bytes[4] === FXP.WRITE);
    expect(writes?.op).toBeUndefined();
    expect(writes?.bytes.length).toBe(
      Buffer.concat([
        client.write(3, 'h0', 0, content.subarray(0, 1000)),
        client.write(4, 'h0', 1000, content.subarray(1000, 2000)),
        client.write(5, 'h0', 2000, content.subarray(2000)),
      ]).length,
    );
  });

  it('gives the same results when every step arrives one byte at a time', () => {
    const slow = play(session, bytewise);
    expect(slow.events).toEqual(reference.events);
    expect(slow.forwarded.equals(reference.forwarded)).toBe(true);
    expect(
      slow.segments.flatMap((segment) => (segment.op === undefined ? [] : [segment.op])),
    ).toEqual(expectedOperations);
  });

  it('gives the same results for a split at every byte boundary of every step', () => {
    let splits = 0;
    session.forEach((step, stepIndex) => {
      for (let at = 1; at < step.bytes.length; at += 1) {
        const split = play(session, (bytes, index) =>
          index === stepIndex ? [bytes.subarray(0, at), bytes.subarray(at)] : [bytes],
        );
        expect(split.events, `step ${stepIndex} split at ${at}`).toEqual(reference.events);
        expect(split.forwarded.equals(reference.forwarded)).toBe(true);
        // A packet is released only once whole: no segment ends inside a packet.
        for (const segment of split.segments) expect(segment.bytes.length).toBeGreaterThan(4);
        splits += 1;
      }
    });
    expect(splits).toBe(session.reduce((sum, step) => sum + step.bytes.length - 1, 0));
  });

  it('holds back an incomplete packet until its last byte arrives', () => {
    const { observer } = observe();
    observer.fromClient(client.init());
    const rm = client.path(FXP.REMOVE, 1, '/etc/important');
    expect(observer.fromClient(rm.subarray(0, rm.length - 1))).toEqual([]);
    const [segment] = observer.fromClient(rm.subarray(rm.length - 1));
    expect(segment?.data.equals(rm)).toBe(true);
    expect(segment?.operation).toEqual({ kind: 'remove', requestId: 1, path: '/etc/important' });
  });
});

describe('SftpObserver transfers', () => {
  const start = [c(client.init()), s(server.version())];

  it('keeps interleaved uploads to two files apart', () => {
    const a = randomBytes(3000);
    const b = randomBytes(1700);
    const run = play(
      [
        ...start,
        c(client.open(1, '/a', W), client.open(2, '/b', W)),
        s(server.handle(2, 'B'), server.handle(1, 'A')),
        c(
          client.write(3, 'A', 0, a.subarray(0, 1000)),
          client.write(4, 'B', 0, b.subarray(0, 1000)),
          client.write(5, 'A', 1000, a.subarray(1000, 2000)),
          client.write(6, 'B', 1000, b.subarray(1000)),
          client.write(7, 'A', 2000, a.subarray(2000)),
        ),
        s(...[7, 3, 6, 4, 5].map((id) => server.status(id, FX.OK))),
        c(client.close(8, 'B'), client.close(9, 'A')),
        s(server.status(9, FX.OK), server.status(8, FX.OK)),
      ],
      whole,
    );
    expect(errors(run.events)).toEqual([]);
    expect(
      transfers(run.events).map((t) => [t.path, t.bytesWritten, t.sha256Written, t.status]),
    ).toEqual([
      ['/a', 3000, sha256(a), 'ok'],
      ['/b', 1700, sha256(b), 'ok'],
    ]);
  });

  it('hashes writes issued out of order once they tile the file', () => {
    const data = randomBytes(3000);
    const run = play(
      [
        ...start,
        c(client.open(1, '/f', W)),
        s(server.handle(1, 'h')),
        c(
          client.write(2, 'h', 2000, data.subarray(2000)),
          client.write(3, 'h', 1000, data.subarray(1000, 2000)),
          client.write(4, 'h', 0, data.subarray(0, 1000)),
        ),
        s(server.status(2, FX.OK), server.status(3, FX.OK), server.status(4, FX.OK)),
        c(client.close(5, 'h')),
        s(server.status(5, FX.OK)),
      ],
      whole,
    );
    expect(transfers(run.events)).toEqual([
      expect.objectContaining({
        bytesWritten: 3000,
        sha256Written: sha256(data),
        sequential: true,
      }),
    ]);
  });

  it('gives up the hash, and says so, when writes are not one stream from offset 0', () => {
    const run = play(
      [
        ...start,
        c(client.open(1, '/f', FXF.WRITE)),
        s(server.handle(1, 'h')),
        c(
          client.write(2, 'h', 100, Buffer.from('later')),
          client.write(3, 'h', 0, Buffer.from('first')),
        ),
        s(server.status(2, FX.OK), server.status(3, FX.OK)),
        c(client.close(4, 'h')),
        s(server.status(4, FX.OK)),
      ],
      whole,
    );
    expect(transfers(run.events)).toEqual([
      expect.objectContaining({
        direction: 'upload',
        bytesWritten: 10,
        sha256Written: null,
        sequential: false,
      }),
    ]);
  });

  it('gives up the read hash when a gap is never filled', () => {
    const run = play(
      [
        ...start,
        c(client.open(1, '/f', FXF.READ)),
        s(server.handle(1, 'h')),
        c(client.read(2, 'h', 0, 10), client.read(3, 'h', 10, 10)),
        s(server.data(3, Buffer.alloc(10, 1)), server.data(2, Buffer.alloc(5, 2))),
        c(client.close(4, 'h')),
        s(server.status(4, FX.OK)),
      ],
      whole,
    );
    expect(transfers(run.events)).toEqual([
      expect.objectContaining({
        direction: 'download',
        bytesRead: 15,
        sha256Read: null,
        sequential: false,
      }),
    ]);
  });

  it('bounds the reorder buffer: beyond it the read hash is given up, not memory', () => {
    const steps = [
      ...start,
      c(client.open(1, '/f', FXF.READ)),
      s(server.handle(1, 'h')),
      c(...[0, 1, 2, 3].map((i) => client.read(10 + i, 'h', i * 100, 100))),
      s(...[3, 2, 1, 0].map((i) => server.data(10 + i, Buffer.alloc(100, i)))),
      c(client.close(2, 'h')),
      s(server.status(2, FX.OK)),
    ];
    const roomy = transfers(play(steps, whole, { maxReorderBytes: 300 }).events)[0];
    const tight = transfers(play(steps, whole, { maxReorderBytes: 299 }).events)[0];
    const expected = Buffer.concat([0, 1, 2, 3].map((i) => Buffer.alloc(100, i)));
    expect(roomy).toMatchObject({ bytesRead: 400, sha256Read: sha256(expected), sequential: true });
    expect(tight).toMatchObject({ bytesRead: 400, sha256Read: null, sequential: false });
  });

  it('marks a transfer failed when a write was refused, even if CLOSE succeeded', () => {
    const run = play(
      [
        ...start,
        c(client.open(1, '/f', W)),
        s(server.handle(1, 'h')),
        c(client.write(2, 'h', 0, Buffer.from('abc'))),
        s(server.status(2, FX.FAILURE, 'No space left on device')),
        c(client.close(3, 'h')),
        s(server.status(3, FX.OK)),
      ],
      whole,
    );
    expect(transfers(run.events)[0]).toMatchObject({ status: 'failed', bytesWritten: 3 });
  });

  it('records an empty upload with the hash of nothing, and a touched-but-unread file as none', () => {
    const run = play(
      [
        ...start,
        c(client.open(1, '/empty', W), client.open(2, '/peek', FXF.READ)),
        s(server.handle(1, 'e'), server.handle(2, 'p')),
        c(client.close(3, 'e'), client.close(4, 'p')),
        s(server.status(3, FX.OK), server.status(4, FX.FAILURE)),
      ],
      whole,
    );
    expect(transfers(run.events)).toEqual([
      expect.objectContaining({
        path: '/empty',
        direction: 'upload',
        sha256Written: sha256(Buffer.alloc(0)),
      }),
      expect.objectContaining({
        path: '/peek',
        direction: 'none',
        sha256Read: null,
        status: 'failed',
      }),
    ]);
  });

  it('reports files still open when the stream ends as incomplete', () => {
    const { observer, events } = play(
      [
        ...start,
        c(client.open(1, '/partial', W)),
        s(server.handle(1, 'h')),
        c(client.write(2, 'h', 0, Buffer.from('half'))),
      ],
      whole,
    );
    observer.end();
    observer.end();
    expect(transfers(events)).toEqual([
      expect.objectContaining({
        path: '/partial',
        bytesWritten: 4,
        sha256Written: sha256(Buffer.from('half')),
        status: 'incomplete',
      }),
    ]);
    expect(observer.fromClient(client.path(FXP.REMOVE, 3, '/x'))).toEqual([]);
  });

  it('does not confuse a handle string the server reuses after CLOSE', () => {
    const run = play(
      [
        ...start,
        c(client.open(1, '/one', W)),
        s(server.handle(1, '0')),
        c(
          client.write(2, '0', 0, Buffer.from('1')),
          client.close(3, '0'),
          client.open(4, '/two', W),
        ),
        s(server.status(2, FX.OK), server.status(3, FX.OK), server.handle(4, '0')),
        c(client.write(5, '0', 0, Buffer.from('22')), client.close(6, '0')),
        s(server.status(5, FX.OK), server.status(6, FX.OK)),
      ],
      whole,
    );
    expect(transfers(run.events).map((t) => [t.path, t.bytesWritten])).toEqual([
      ['/one', 1],
      ['/two', 2],
    ]);
  });

  it('attributes copy-data to both files and does not claim a hash for the copied content', () => {
    const run = play(
      [
        ...start,
        c(client.open(1, '/src', FXF.READ), client.open(2, '/dst', W)),
        s(server.handle(1, 'r'), server.handle(2, 'w')),
        c(client.extended(3, 'copy-data', str('r'), u64(0), u64(0), str('w'), u64(0))),
        s(server.status(3, FX.OK)),
        c(client.close(4, 'w')),
        s(server.status(4, FX.OK)),
      ],
      whole,
    );
    expect(operations(run.events)[2]).toEqual({
      kind: 'extended',
      requestId: 3,
      name: 'copy-data',
      path: '/src',
      target: '/dst',
    });
    expect(transfers(run.events)[0]).toMatchObject({
      path: '/dst',
      sha256Written: null,
      sequential: false,
    });
  });
});

describe('SftpObserver operations', () => {
  const opsOf = (...packets: Buffer[]) => {
    const { observer, events } = observe();
    observer.fromClient(client.init());
    for (const p of packets) observer.fromClient(p);
    return { ops: operations(events), errors: errors(events) };
  };

  it('renders paths losslessly: invalid UTF-8 and controls as \\xNN, backslash doubled', () => {
    const weird = Buffer.concat([
      Buffer.from('/tmp/caf\u00e9-'),
      Buffer.from([0xff, 0x0a]),
      Buffer.from('\\x41-\u{1f600}'),
    ]);
    expect(opsOf(client.path(FXP.STAT, 1, weird)).ops).toEqual([
      { kind: 'stat', requestId: 1, path: '/tmp/caf\u00e9-\\xff\\x0a\\\\x41-\u{1f600}' },
    ]);
    // Overlong encodings and encoded surrogates are not well-formed UTF-8.
    expect(
      opsOf(client.path(FXP.STAT, 1, Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80]))).ops[0],
    ).toMatchObject({
      path: '\\xc0\\xaf\\xed\\xa0\\x80',
    });
  });

  it('reads setstat attributes and the draft order of SYMLINK when asked', () => {
    const { observer, events } = observe({ symlinkArgumentOrder: 'draft' });
    observer.fromClient(client.init());
    observer.fromClient(client.setstat(1, '/etc/passwd', 0o100777));
    observer.fromClient(client.symlink(2, '/link', '/target'));
    expect(operations(events)).toEqual([
      { kind: 'setstat', requestId: 1, path: '/etc/passwd', attrs: { permissions: 0o100777 } },
      { kind: 'symlink', requestId: 2, path: '/link', target: '/target' },
    ]);
  });

  it('records extensions by name, with paths where it knows the payload', () => {
    const { ops } = opsOf(
      client.extended(1, 'statvfs@openssh.com', str('/var')),
      client.extended(2, 'hardlink@openssh.com', str('/a'), str('/b')),
      client.extended(3, 'limits@openssh.com'),
      client.extended(4, 'home-directory', str('root')),
      client.extended(5, 'vendor-magic@example.com', str('opaque')),
    );
    expect(ops).toEqual([
      { kind: 'extended', requestId: 1, name: 'statvfs@openssh.com', path: '/var' },
      { kind: 'extended', requestId: 2, name: 'hardlink@openssh.com', path: '/a', target: '/b' },
      { kind: 'extended', requestId: 3, name: 'limits@openssh.com' },
      { kind: 'extended', requestId: 4, name: 'home-directory', path: '~root' },
      { kind: 'extended', requestId: 5, name: 'vendor-magic@example.com' },
    ]);
  });

  it('does not record reads of handles already on record (FSTAT, READDIR)', () => {
    const { observer, events } = observe();
    observer.fromClient(client.init());
    observer.fromClient(client.opendir(1, '/srv'));
    observer.fromServer(Buffer.concat([server.version(), server.handle(1, 'd')]));
    const segments = observer.fromClient(
      Buffer.concat([client.readdir(2, 'd'), client.fstat(3, 'd')]),
    );
    expect(segments).toHaveLength(1);
    expect(segments[0]?.operation).toBeUndefined();
    expect(operations(events)).toEqual([{ kind: 'opendir', requestId: 1, path: '/srv' }]);
  });
});

describe('SftpObserver refuses what it cannot judge', () => {
  /** Feeds client packets (and optional server replies first); returns errors and forwarded bytes. */
  const judge = (packets: Buffer[], options: SftpObserverOptions = {}, replies: Buffer[] = []) => {
    const { observer, events } = observe(options);
    const forwarded: Buffer[] = [];
    for (const p of [client.init(), ...packets]) {
      for (const segment of observer.fromClient(p)) forwarded.push(segment.data);
      if (p === packets[0]) for (const r of replies) observer.fromServer(r);
    }
    return { errors: errors(events), forwarded: Buffer.concat(forwarded), observer };
  };

  it('rejects a client packet longer than maxPacketBytes before buffering it', () => {
    const big = client.write(1, 'h', 0, Buffer.alloc(300 * 1024));
    const { observer, events } = observe();
    observer.fromClient(client.init());
    // The header alone is enough to judge it; nothing is released, now or later.
    expect(observer.fromClient(big.subarray(0, 9))).toEqual([]);
    expect(errors(events)).toEqual([expect.stringMatching(/exceeds the limit/)]);
    expect(observer.fromClient(big.subarray(9))).toEqual([]);
    expect(observer.fromClient(client.path(FXP.REMOVE, 2, '/x'))).toEqual([]);
    expect(errors(events)).toHaveLength(1);
    expect(observer.stopped).toBe(true);
  });

  it('honours a smaller maxPacketBytes, and applies it to DATA replies too', () => {
    expect(
      judge([client.path(FXP.STAT, 1, 'x'.repeat(100))], { maxPacketBytes: 64 }).errors,
    ).toHaveLength(1);
    const { observer, events } = observe({ maxPacketBytes: 64 });
    observer.fromServer(server.data(1, Buffer.alloc(100)));
    expect(errors(events)).toEqual([expect.stringMatching(/exceeds the limit/)]);
  });

  it('lets long NAME listings through without buffering or limiting them', () => {
    const { observer, events } = observe({ maxPacketBytes: 64 });
    observer.fromClient(client.init());
    observer.fromClient(client.opendir(1, '/big'));
    const listing = server.name(
      7,
      Array.from({ length: 50 }, (_, i) => `file-${i}`),
    );
    for (const b of bytewise(listing)) observer.fromServer(b);
    observer.fromServer(server.handle(1, 'd'));
    expect(errors(events)).toEqual([]);
    expect(observer.fromClient(client.readdir(2, 'd'))).toHaveLength(1);
  });

  it.each([
    ['a request before INIT', [client.path(FXP.STAT, 1, '/')], false],
    ['a packet without a type byte', [Buffer.from([0, 0, 0, 0])], true],
    ['a string running past its packet', [packet(FXP.REMOVE, u32(1), u32(100))], true],
    ['a server message sent by the client', [server.status(1, FX.OK)], true],
    ['an unknown packet type', [packet(99, u32(1))], true],
    ['a repeated INIT', [client.init()], true],
    ['a WRITE on a handle that is not open', [client.write(1, 'nope', 0, Buffer.from('x'))], true],
    ['a READ on a handle that is not open', [client.read(1, 'nope', 0, 10)], true],
    ['an FSETSTAT on a handle that is not open', [client.fsetstat(1, 'nope', 0o777)], true],
  ])('rejects %s', (_name, packets, afterInit) => {
    const { observer, events } = observe();
    if (afterInit) observer.fromClient(client.init());
    const forwarded = packets.flatMap((p) => observer.fromClient(p));
    expect(errors(events)).toHaveLength(1);
    expect(forwarded).toEqual([]);
  });

  it('rejects a request id reused while still outstanding', () => {
    const result = judge([client.path(FXP.STAT, 5, '/a'), client.path(FXP.REMOVE, 5, '/b')]);
    expect(result.errors).toEqual([expect.stringMatching(/request id 5 reused/)]);
    expect(
      result.forwarded.equals(Buffer.concat([client.init(), client.path(FXP.STAT, 5, '/a')])),
    ).toBe(true);
  });

  it('rejects an INIT below version 3 and a VERSION other than 3', () => {
    const { observer, events } = observe();
    expect(observer.fromClient(client.init(2))).toEqual([]);
    const other = observe();
    other.observer.fromClient(client.init(6));
    other.observer.fromServer(server.version(6));
    expect([...errors(events), ...errors(other.events)]).toEqual([
      expect.stringMatching(/version 2/),
      expect.stringMatching(/version 6/),
    ]);
  });

  it('caps outstanding requests and open handles', () => {
    const stats = Array.from({ length: 5 }, (_, i) => client.path(FXP.STAT, i, '/'));
    expect(judge(stats, { maxPendingRequests: 4 }).errors).toEqual([
      expect.stringMatching(/more than 4 requests/),
    ]);
    const opens = Array.from({ length: 3 }, (_, i) => client.open(i, `/f${i}`, FXF.READ));
    expect(judge(opens, { maxHandles: 2 }).errors).toEqual([
      expect.stringMatching(/more than 2 handles/),
    ]);
    expect(judge(opens, { maxRetainedPathChars: 5 }).errors).toEqual([
      expect.stringMatching(/memory limit/),
    ]);
  });

  it('frees handle slots when opens fail and files close', () => {
    const { observer, events } = observe({ maxHandles: 1 });
    observer.fromClient(client.init());
    for (let i = 0; i < 3; i += 1) {
      observer.fromClient(client.open(10 * i + 1, '/f', FXF.READ));
      observer.fromServer(server.handle(10 * i + 1, 'h'));
      observer.fromClient(client.close(10 * i + 2, 'h'));
      observer.fromServer(server.status(10 * i + 2, FX.OK));
    }
    observer.fromClient(client.open(99, '/missing', FXF.READ));
    observer.fromServer(server.status(99, FX.NO_SUCH_FILE));
    observer.fromClient(client.open(100, '/f', FXF.READ));
    expect(errors(events)).toEqual([]);
    expect(transfers(events)).toHaveLength(3);
  });

  it('rejects options that are not positive integers', () => {
    expect(() => observe({ maxPacketBytes: 0 })).toThrow(RangeError);
  });
});
