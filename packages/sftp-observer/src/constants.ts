// Numbers of SFTP protocol version 3, draft-ietf-secsh-filexfer-02 (the
// version OpenSSH's sftp-server and sftp/scp clients speak), plus the
// OpenSSH extensions listed in OpenSSH's PROTOCOL file, section 4.

/** The only protocol version this observer can parse (§4). */
export const SFTP_VERSION = 3;

/** Packet types (§3). */
export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

/** `pflags` of SSH_FXP_OPEN (§6.3). */
export const FXF = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

/** Error/status codes of SSH_FXP_STATUS (§7). */
export const FX = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** Flags of the ATTRS structure (§5). */
export const FILEXFER_ATTR = {
  SIZE: 0x00000001,
  UIDGID: 0x00000002,
  PERMISSIONS: 0x00000004,
  ACMODTIME: 0x00000008,
  EXTENDED: 0x80000000,
} as const;

/**
 * OpenSSH's sftp-server refuses messages longer than SFTP_MAX_MSG_LENGTH
 * (256 KiB, counted as the uint32 length field of §3); its `limits@openssh.com`
 * reply advertises reads and writes of 256 KiB − 1 KiB so that a full WRITE
 * still fits. The extra kibibyte leaves room for the header of other servers.
 */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024 + 1024;
