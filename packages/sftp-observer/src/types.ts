import type { SftpAttributes } from './packet-reader.js';

export type { SftpAttributes };

/** `pflags` of SSH_FXP_OPEN (§6.3). */
export interface OpenFlags {
  read: boolean;
  write: boolean;
  append: boolean;
  create: boolean;
  truncate: boolean;
  exclusive: boolean;
}

/**
 * A client request that changes or reveals state on the asset, as it will be
 * recorded before it is forwarded (write-ahead).
 *
 * Paths are rendered by `renderSftpString`: UTF-8, with `\` as `\\` and
 * controls and invalid bytes as `\xNN` — lossless, and safe to store and show.
 * Paths are as the client sent them (OpenSSH's sftp sends absolute paths;
 * relative ones are relative to the login's home directory on the asset).
 */
export type SftpOperation =
  /** §6.3 */
  | { kind: 'open'; requestId: number; path: string; flags: OpenFlags }
  /** §6.5 REMOVE, §6.6 MKDIR/RMDIR, §6.7 OPENDIR, §6.8 STAT/LSTAT, §6.10 READLINK, §6.11 REALPATH */
  | {
      kind: 'remove' | 'mkdir' | 'rmdir' | 'opendir' | 'stat' | 'lstat' | 'realpath' | 'readlink';
      requestId: number;
      path: string;
    }
  /**
   * §6.9 SETSTAT and FSETSTAT (chmod, chown, truncate, utimes); for FSETSTAT
   * `path` is the path the handle was opened with.
   */
  | { kind: 'setstat' | 'fsetstat'; requestId: number; path: string; attrs: SftpAttributes }
  /**
   * §6.5 RENAME: `path` → `target`. §6.10 SYMLINK: `path` is the link that is
   * created, `target` what it points to (see `symlinkArgumentOrder`).
   */
  | { kind: 'rename' | 'symlink'; requestId: number; path: string; target: string }
  /**
   * §8 EXTENDED. Known extensions fill `path`/`target`: OpenSSH's
   * posix-rename, hardlink (path → target), statvfs, lsetstat, expand-path,
   * fstatvfs and fsync (the handle's path), copy-data (source → destination
   * file), and draft-ietf-secsh-filexfer-extensions-00's home-directory
   * (`~user`), copy-file, space-available, check-file-name/-handle. Others
   * carry their name only; their payload is opaque to this observer.
   */
  | { kind: 'extended'; requestId: number; name: string; path?: string; target?: string };

export interface FileTransferSummary {
  path: string;
  /**
   * `upload` if the client wrote (or opened with WRITE|TRUNC, which empties
   * the file), `download` if it read, `both`, or `none`.
   */
  direction: 'upload' | 'download' | 'both' | 'none';
  /** Sum of WRITE payloads sent (whether or not the server accepted them; see `status`). */
  bytesWritten: number;
  /** Sum of DATA payloads received. */
  bytesRead: number;
  /**
   * Hex SHA-256 of the bytes written, when the WRITEs tiled offsets 0..bytesWritten
   * without gap or overlap (issued in order, or out of order within
   * `maxReorderBytes`). Without TRUNC the file may hold more than that stream.
   * `null` when they did not (`sequential` is then false), or when nothing was
   * written to a file that was not truncated.
   */
  sha256Written: string | null;
  /** Hex SHA-256 of the bytes read, under the same rule for the DATA replies (in any order); else `null`. */
  sha256Read: string | null;
  /** False when the writes or the reads were not one contiguous stream from offset 0 (their hash is then null). */
  sequential: boolean;
  /**
   * `ok`: CLOSE succeeded and no WRITE or READ on the handle failed. `failed`:
   * CLOSE or some WRITE/READ returned an error status (§7; EOF on READ is not
   * an error). `incomplete`: the stream ended before the CLOSE reply (see
   * `SftpObserver.end`).
   */
  status: 'ok' | 'failed' | 'incomplete';
  /** The request id of the OPEN that created the handle: joins this summary to its `open` operation. */
  openRequestId: number;
  flags: OpenFlags;
}

/** The outcome of a request that carried an operation (its STATUS, or any other reply meaning success). */
export interface SftpOperationResult {
  requestId: number;
  kind: SftpOperation['kind'];
  ok: boolean;
  /** §7 status code; 0 for replies other than STATUS. */
  code: number;
  /** The server's error message, rendered like paths; empty when there is none. */
  message: string;
}

export interface SftpObserverCallbacks {
  /** A client request that changes or reveals state and must be recorded before it is forwarded. */
  onOperation(op: SftpOperation): void;
  /** A file handle was closed: one finished transfer. */
  onTransfer(summary: FileTransferSummary): void;
  /** Malformed stream: the gateway ends the channel. Called at most once; the observer then stops. */
  onProtocolError(message: string): void;
  /** The server answered a request that carried an operation. */
  onOperationResult?(result: SftpOperationResult): void;
}

export interface SftpObserverOptions {
  /**
   * Largest packet accepted, counted as the uint32 length field of §3 (type
   * byte and body, without the 4 length bytes). Default 256 KiB + 1 KiB.
   * Client packets and the server's VERSION/STATUS/HANDLE/DATA replies above
   * it are protocol errors; other replies are not buffered and not limited.
   */
  maxPacketBytes?: number;
  /** Requests awaiting a reply (OpenSSH's sftp keeps ≤ 64 in flight). Default 1024. */
  maxPendingRequests?: number;
  /** File and directory handles open or being opened. Default 256. */
  maxHandles?: number;
  /** Characters of path kept for open handles and pending OPEN/OPENDIR. Default 4 Mi. */
  maxRetainedPathChars?: number;
  /**
   * Bytes of out-of-order WRITE payloads and READ replies held (copied) for
   * hashing, across all handles; beyond it a hash is given up, not memory. Default 8 MiB.
   */
  maxReorderBytes?: number;
  /**
   * How SYMLINK's two strings are read. OpenSSH's sftp-server and clients send
   * target first, link second — the reverse of §6.10 (OpenSSH PROTOCOL,
   * "sftp: Reversal of arguments to SSH_FXP_SYMLINK");
   * 'draft' reads link first. Default 'openssh'.
   */
  symlinkArgumentOrder?: 'openssh' | 'draft';
}
