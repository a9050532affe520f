import { DEFAULT_MAX_PACKET_BYTES, FX, FXF, FXP, SFTP_VERSION } from './constants.js';
import { FileTransfer, type ReorderBudget } from './file-transfer.js';
import { FramingError, PacketFramer, type FramedPacket } from './framer.js';
import { MalformedPacketError, PacketReader } from './packet-reader.js';
import type {
  FileTransferSummary,
  OpenFlags,
  SftpObserverCallbacks,
  SftpObserverOptions,
  SftpOperation,
} from './types.js';

/** A bytes-to-forward segment: one judged packet carrying an operation, or a run of packets carrying none. */
export interface ClientSegment {
  data: Buffer;
  operation?: SftpOperation;
}

/** The observer must stop: the message goes to onProtocolError. */
class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** A handle the server gave out (§6.3 OPEN, §6.7 OPENDIR), keyed by its bytes. */
type TrackedHandle =
  { kind: 'file'; transfer: FileTransfer; path: string } | { kind: 'dir'; path: string };

/**
 * A request awaiting its reply. Every request id in flight is tracked, so a
 * reply can never be mistaken for the reply to another request (§3: "the
 * server … may send responses in a different order", matched by id).
 */
type PendingRequest = { operation?: SftpOperation } & (
  | { kind: 'open'; path: string; flags: OpenFlags; requestId: number }
  | { kind: 'opendir'; path: string }
  | { kind: 'read'; transfer: FileTransfer; offset: number }
  | { kind: 'write'; transfer: FileTransfer }
  | { kind: 'close'; handle: TrackedHandle | undefined }
  | { kind: 'other' }
);

/** Replies whose body matters; the rest (NAME, ATTRS, EXTENDED_REPLY) only settle their request. */
const SERVER_TYPES_READ_IN_FULL = new Set<number>([FXP.VERSION, FXP.STATUS, FXP.HANDLE, FXP.DATA]);

/**
 * Watches one SFTP v3 session (draft-ietf-secsh-filexfer-02) relayed byte for
 * byte between a client and a server, without doing any I/O: the gateway
 * feeds it both directions and forwards what it returns.
 *
 * Security invariant (write-ahead audit): every client packet is judged whole
 * before any byte of it is released, and a packet that changes or reveals
 * state on the asset is released alone, tagged with its operation, so the
 * caller can make the record durable before forwarding it. When the stream
 * cannot be understood — malformed, oversized, a version other than 3, a
 * request that cannot be attributed — the observer reports onProtocolError
 * once and releases nothing more: it fails closed.
 */
export class SftpObserver {
  readonly #callbacks: SftpObserverCallbacks;
  readonly #maxPendingRequests: number;
  readonly #maxHandles: number;
  readonly #maxRetainedPathChars: number;
  readonly #symlinkOrder: 'openssh' | 'draft';
  readonly #clientFramer: PacketFramer;
  readonly #serverFramer: PacketFramer;
  readonly #reorderBudget: ReorderBudget;

  readonly #pending = new Map<number, PendingRequest>();
  readonly #handles = new Map<string, TrackedHandle>();
  /** Handles open, being opened, or being closed: what counts against maxHandles. */
  #trackedHandles = 0;
  #retainedPathChars = 0;
  #initSeen = false;
  #stopped = false;

  constructor(callbacks: SftpObserverCallbacks, options: SftpObserverOptions = {}) {
    const maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    for (const [name, value] of Object.entries(options)) {
      if (typeof value === 'number' && !(Number.isSafeInteger(value) && value > 0)) {
        throw new RangeError(
          `SftpObserver option ${name} must be a positive integer, got ${value}`,
        );
      }
    }
    this.#callbacks = callbacks;
    this.#maxPendingRequests = options.maxPendingRequests ?? 1024;
    this.#maxHandles = options.maxHandles ?? 256;
    this.#maxRetainedPathChars = options.maxRetainedPathChars ?? 4 * 1024 * 1024;
    this.#symlinkOrder = options.symlinkArgumentOrder ?? 'openssh';
    this.#reorderBudget = { used: 0, max: options.maxReorderBytes ?? 8 * 1024 * 1024 };
    this.#clientFramer = new PacketFramer(maxPacketBytes);
    this.#serverFramer = new PacketFramer(maxPacketBytes, (type) =>
      SERVER_TYPES_READ_IN_FULL.has(type),
    );
  }

  /** True once a protocol error was reported or `end()` was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Client → server bytes. Returns the bytes that may be forwarded now, split
   * at packet boundaries: each packet carrying an operation is a segment of
   * its own; consecutive packets carrying none share one. The caller forwards
   * the segments in order, awaiting the durability of each operation's record
   * before forwarding its segment (write-ahead). Bytes of an incomplete packet
   * are held until the packet is complete. The call that meets a protocol
   * error, and every later call, returns nothing.
   */
  fromClient(data: Buffer): ClientSegment[] {
    if (this.#stopped) return [];
    const segments: ClientSegment[] = [];
    let run: Buffer[] = [];
    const flushRun = (): void => {
      if (run.length === 0) return;
      segments.push({ data: run.length === 1 ? run[0]! : Buffer.concat(run) });
      run = [];
    };
    try {
      for (const packet of this.#clientFramer.push(data)) {
        if (packet.skipped) continue; // The client framer reads every packet in full.
        const operation = this.#judgeClientPacket(packet.raw);
        if (operation === undefined) {
          run.push(packet.raw);
          continue;
        }
        flushRun();
        segments.push({ data: packet.raw, operation });
        this.#callbacks.onOperation(operation);
      }
      flushRun();
      return segments;
    } catch (err) {
      this.#fail(err);
      // Fail closed: the channel ends, so nothing of this call is released either.
      return [];
    }
  }

  /**
   * Server → client bytes (VERSION, STATUS, HANDLE, DATA, NAME, ATTRS …).
   * Never delayed: returned unchanged, for convenience.
   */
  fromServer(data: Buffer): Buffer {
    if (this.#stopped) return data;
    try {
      for (const packet of this.#serverFramer.push(data)) this.#observeServerPacket(packet);
    } catch (err) {
      this.#fail(err);
    }
    return data;
  }

  /**
   * The channel is gone. Every file still open (or whose CLOSE was not yet
   * answered) is reported through onTransfer with status `incomplete`, so an
   * interrupted upload is still on record. Idempotent.
   */
  end(): void {
    const transfers = new Set<FileTransfer>();
    for (const handle of this.#handles.values())
      if (handle.kind === 'file') transfers.add(handle.transfer);
    for (const pending of this.#pending.values()) {
      if (pending.kind === 'close' && pending.handle?.kind === 'file')
        transfers.add(pending.handle.transfer);
    }
    this.#handles.clear();
    this.#pending.clear();
    this.#trackedHandles = 0;
    this.#retainedPathChars = 0;
    this.#stopped = true;
    for (const transfer of transfers) this.#callbacks.onTransfer(transfer.summary('incomplete'));
  }

  #fail(err: unknown): void {
    if (!(
      err instanceof ProtocolError ||
      err instanceof MalformedPacketError ||
      err instanceof FramingError
    )) {
      throw err;
    }
    if (this.#stopped) return;
    this.#stopped = true;
    this.#callbacks.onProtocolError(err.message);
  }

  // ---- client → server -------------------------------------------------------------------------

  /** Registers the request and returns its operation, if it carries one. Throws on anything unsound. */
  #judgeClientPacket(raw: Buffer): SftpOperation | undefined {
    const body = raw.subarray(4);
    const type = body[0]!;
    const reader = new PacketReader(body, 1);

    // §4: the client opens with INIT (uint32 version, then extension pairs); once.
    if (!this.#initSeen) {
      if (type !== FXP.INIT)
        throw new ProtocolError(`expected SSH_FXP_INIT first, got packet type ${type}`);
      const version = reader.uint32('INIT version');
      if (version < SFTP_VERSION)
        throw new ProtocolError(`client asks for SFTP version ${version}; only 3 is supported`);
      this.#initSeen = true;
      return undefined;
    }
    if (type === FXP.INIT) throw new ProtocolError('SSH_FXP_INIT repeated');

    const requestId = reader.uint32('request id');
    if (this.#pending.has(requestId)) {
      throw new ProtocolError(
        `request id ${requestId} reused while a request with that id is outstanding`,
      );
    }
    if (this.#pending.size >= this.#maxPendingRequests) {
      throw new ProtocolError(`more than ${this.#maxPendingRequests} requests outstanding`);
    }
    const pending = this.#parseRequest(type, requestId, reader);
    this.#pending.set(requestId, pending);
    return pending.operation;
  }

  #parseRequest(type: number, requestId: number, reader: PacketReader): PendingRequest {
    switch (type) {
      case FXP.OPEN: {
        // §6.3: string filename, uint32 pflags, ATTRS attrs
        const path = reader.text('filename');
        const pflags = reader.uint32('pflags');
        reader.attrs();
        const flags: OpenFlags = {
          read: (pflags & FXF.READ) !== 0,
          write: (pflags & FXF.WRITE) !== 0,
          append: (pflags & FXF.APPEND) !== 0,
          create: (pflags & FXF.CREAT) !== 0,
          truncate: (pflags & FXF.TRUNC) !== 0,
          exclusive: (pflags & FXF.EXCL) !== 0,
        };
        this.#reserveHandle(path);
        return {
          kind: 'open',
          path,
          flags,
          requestId,
          operation: { kind: 'open', requestId, path, flags },
        };
      }
      case FXP.OPENDIR: {
        // §6.7: string path
        const path = reader.text('path');
        this.#reserveHandle(path);
        return { kind: 'opendir', path, operation: { kind: 'opendir', requestId, path } };
      }
      case FXP.CLOSE: {
        // §6.3: string handle. The handle is forgotten now, so that a server
        // reusing the handle string for the next OPEN cannot be confused with it.
        const key = this.#handleKey(reader);
        const handle = this.#handles.get(key);
        this.#handles.delete(key);
        return { kind: 'close', handle };
      }
      case FXP.READ: {
        // §6.4: string handle, uint64 offset, uint32 len
        const handle = this.#attributableHandle(reader, 'READ');
        const offset = reader.uint64('offset');
        reader.uint32('len');
        if (handle.kind !== 'file') return { kind: 'other' }; // The server refuses it.
        handle.transfer.readRequested();
        return { kind: 'read', transfer: handle.transfer, offset };
      }
      case FXP.WRITE: {
        // §6.4: string handle, uint64 offset, string data
        const handle = this.#attributableHandle(reader, 'WRITE');
        const offset = reader.uint64('offset');
        const data = reader.bytes('data');
        if (handle.kind !== 'file') return { kind: 'other' };
        handle.transfer.write(offset, data);
        return { kind: 'write', transfer: handle.transfer };
      }
      case FXP.REMOVE: // §6.5
      case FXP.RMDIR: // §6.6
      case FXP.STAT: // §6.8
      case FXP.LSTAT:
      case FXP.REALPATH: // §6.11
      case FXP.READLINK: {
        // §6.10
        const kind = PATH_ONLY_KINDS[type]!;
        return { kind: 'other', operation: { kind, requestId, path: reader.text('path') } };
      }
      case FXP.MKDIR: {
        // §6.6: string path, ATTRS attrs
        const path = reader.text('path');
        reader.attrs();
        return { kind: 'other', operation: { kind: 'mkdir', requestId, path } };
      }
      case FXP.SETSTAT: {
        // §6.9: string path, ATTRS attrs
        const path = reader.text('path');
        return {
          kind: 'other',
          operation: { kind: 'setstat', requestId, path, attrs: reader.attrs() },
        };
      }
      case FXP.FSETSTAT: {
        // §6.9: string handle, ATTRS attrs
        const { path } = this.#attributableHandle(reader, 'FSETSTAT');
        return {
          kind: 'other',
          operation: { kind: 'fsetstat', requestId, path, attrs: reader.attrs() },
        };
      }
      case FXP.FSTAT: // §6.8
      case FXP.READDIR: // §6.7: state of a handle already on record
        this.#handleKey(reader);
        return { kind: 'other' };
      case FXP.RENAME: {
        // §6.5: string oldpath, string newpath
        const path = reader.text('oldpath');
        const target = reader.text('newpath');
        return { kind: 'other', operation: { kind: 'rename', requestId, path, target } };
      }
      case FXP.SYMLINK: {
        // §6.10: string linkpath, string targetpath — sent reversed by OpenSSH.
        const first = reader.text('symlink path');
        const second = reader.text('symlink path');
        const [path, target] = this.#symlinkOrder === 'openssh' ? [second, first] : [first, second];
        return { kind: 'other', operation: { kind: 'symlink', requestId, path, target } };
      }
      case FXP.EXTENDED:
        return { kind: 'other', operation: this.#parseExtended(requestId, reader) };
      default:
        // Anything else is either a server message or not SFTP v3: the
        // server's reaction is unknown, so nothing unjudged is forwarded.
        throw new ProtocolError(`unexpected packet type ${type} from the client`);
    }
  }

  /** §8 SSH_FXP_EXTENDED: string extended-request, then request-specific data. */
  #parseExtended(requestId: number, reader: PacketReader): SftpOperation {
    const name = reader.text('extended-request');
    const op = (fields: { path?: string; target?: string } = {}): SftpOperation => ({
      kind: 'extended',
      requestId,
      name,
      ...fields,
    });
    // Payloads: OpenSSH PROTOCOL §4 ("SFTP protocol changes") for @openssh.com;
    // draft-ietf-secsh-filexfer-extensions-00 §3 check-file, §4
    // space-available, §5 home-directory, §6 copy-file, §7 copy-data.
    switch (name) {
      // string oldpath, string newpath (copy-file: then bool overwrite)
      case 'posix-rename@openssh.com':
      case 'hardlink@openssh.com':
      case 'copy-file': {
        const path = reader.text('source path');
        return op({ path, target: reader.text('destination path') });
      }
      // string path, … (lsetstat: then ATTRS; check-file-name: then the hash parameters)
      case 'statvfs@openssh.com':
      case 'lsetstat@openssh.com':
      case 'expand-path@openssh.com':
      case 'space-available':
      case 'check-file-name':
        return op({ path: reader.text('path') });
      // string handle, …
      case 'fstatvfs@openssh.com':
      case 'fsync@openssh.com':
      case 'check-file-handle': {
        const handle = this.#handles.get(this.#handleKey(reader));
        return handle === undefined ? op() : op({ path: handle.path });
      }
      // copy-data: string read-from-handle, uint64 read-from-offset,
      // uint64 read-data-length, string write-to-handle, uint64 write-to-offset.
      // The server copies between two open files; the copied bytes never pass
      // here, so the destination's written hash is given up.
      case 'copy-data': {
        const source = this.#attributableHandle(reader, 'copy-data');
        reader.uint64('read-from-offset');
        reader.uint64('read-data-length');
        const destination = this.#attributableHandle(reader, 'copy-data');
        reader.uint64('write-to-offset');
        if (destination.kind === 'file') destination.transfer.contentNotObserved();
        return op({ path: source.path, target: destination.path });
      }
      // home-directory: string username
      case 'home-directory':
        return op({ path: `~${reader.text('username')}` });
      default:
        return op();
    }
  }

  #handleKey(reader: PacketReader): string {
    // latin1 maps bytes 1:1 onto code units: a lossless, cheap map key.
    return reader.bytes('handle').toString('latin1');
  }

  /**
   * A handle a content- or state-changing request refers to. One the server
   * never gave out (or that was closed) cannot be attributed to a path, so
   * the request is not forwarded: with complete tracking, only a broken or
   * hostile client sends one.
   */
  #attributableHandle(reader: PacketReader, request: string): TrackedHandle {
    const handle = this.#handles.get(this.#handleKey(reader));
    if (handle === undefined) throw new ProtocolError(`${request} on a handle that is not open`);
    return handle;
  }

  #reserveHandle(path: string): void {
    if (this.#trackedHandles >= this.#maxHandles)
      throw new ProtocolError(`more than ${this.#maxHandles} handles open`);
    if (this.#retainedPathChars + path.length > this.#maxRetainedPathChars) {
      throw new ProtocolError('paths of open handles exceed the memory limit');
    }
    this.#trackedHandles += 1;
    this.#retainedPathChars += path.length;
  }

  #releaseHandle(path: string): void {
    this.#trackedHandles -= 1;
    this.#retainedPathChars -= path.length;
  }

  // ---- server → client -------------------------------------------------------------------------

  #observeServerPacket(packet: FramedPacket): void {
    if (packet.skipped) {
      // NAME, ATTRS, EXTENDED_REPLY (§7, §8): a successful answer.
      this.#settle(packet.requestId, { type: packet.type, code: FX.OK, message: '' });
      return;
    }
    const body = packet.raw.subarray(4);
    const reader = new PacketReader(body, 1);
    if (packet.type === FXP.VERSION) {
      // §4: uint32 version, then extension pairs.
      const version = reader.uint32('VERSION version');
      if (version !== SFTP_VERSION)
        throw new ProtocolError(`server speaks SFTP version ${version}; only 3 is supported`);
      return;
    }
    const requestId = reader.uint32('request id');
    switch (packet.type) {
      case FXP.STATUS: {
        // §7: uint32 error/status code, string error message, string language tag
        const code = reader.uint32('status code');
        const message = reader.remaining > 0 ? reader.text('error message') : '';
        this.#settle(requestId, { type: FXP.STATUS, code, message });
        return;
      }
      case FXP.HANDLE: // §7: string handle
        this.#settle(requestId, {
          type: FXP.HANDLE,
          code: FX.OK,
          message: '',
          handle: this.#handleKey(reader),
        });
        return;
      case FXP.DATA: // §7: string data
        this.#settle(requestId, {
          type: FXP.DATA,
          code: FX.OK,
          message: '',
          data: reader.bytes('data'),
        });
        return;
    }
  }

  #settle(
    requestId: number,
    reply: { type: number; code: number; message: string; handle?: string; data?: Buffer },
  ): void {
    const pending = this.#pending.get(requestId);
    // A reply to nothing outstanding changes nothing we track; the client will ignore it too.
    if (pending === undefined) return;
    this.#pending.delete(requestId);
    const ok = reply.code === FX.OK;

    switch (pending.kind) {
      case 'open':
      case 'opendir': {
        if (reply.handle === undefined) {
          this.#releaseHandle(pending.path);
          break;
        }
        const previous = this.#handles.get(reply.handle);
        if (previous !== undefined) this.#forgetHandle(previous, 'incomplete');
        this.#handles.set(
          reply.handle,
          pending.kind === 'open'
            ? {
                kind: 'file',
                path: pending.path,
                transfer: new FileTransfer(
                  pending.path,
                  pending.flags,
                  pending.requestId,
                  this.#reorderBudget,
                ),
              }
            : { kind: 'dir', path: pending.path },
        );
        break;
      }
      case 'read':
        if (reply.data !== undefined) pending.transfer.readReplied(pending.offset, reply.data);
        else if (reply.code !== FX.EOF) pending.transfer.failed();
        break;
      case 'write':
        if (!ok) pending.transfer.failed();
        break;
      case 'close':
        if (pending.handle !== undefined) this.#forgetHandle(pending.handle, ok ? 'ok' : 'failed');
        break;
      case 'other':
        break;
    }

    if (pending.operation !== undefined) {
      this.#callbacks.onOperationResult?.({
        requestId,
        kind: pending.operation.kind,
        ok,
        code: reply.code,
        message: reply.message,
      });
    }
  }

  #forgetHandle(handle: TrackedHandle, status: FileTransferSummary['status']): void {
    this.#releaseHandle(handle.path);
    if (handle.kind === 'file') this.#callbacks.onTransfer(handle.transfer.summary(status));
  }
}

const PATH_ONLY_KINDS: Partial<
  Record<number, 'remove' | 'rmdir' | 'stat' | 'lstat' | 'realpath' | 'readlink'>
> = {
  [FXP.REMOVE]: 'remove',
  [FXP.RMDIR]: 'rmdir',
  [FXP.STAT]: 'stat',
  [FXP.LSTAT]: 'lstat',
  [FXP.REALPATH]: 'realpath',
  [FXP.READLINK]: 'readlink',
};
