// A tiny SFTP v3 encoder for tests (draft-ietf-secsh-filexfer-02 §3): just
// enough to build the packets a client and a server exchange.
import { FXP } from '../constants.js';

export type Field = { u8: number } | { u32: number } | { u64: number } | { str: string | Buffer };

export const u8 = (value: number): Field => ({ u8: value });
export const u32 = (value: number): Field => ({ u32: value });
export const u64 = (value: number): Field => ({ u64: value });
export const str = (value: string | Buffer): Field => ({ str: value });

function encodeField(field: Field): Buffer {
  if ('u8' in field) return Buffer.from([field.u8]);
  if ('u32' in field) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(field.u32);
    return b;
  }
  if ('u64' in field) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(field.u64));
    return b;
  }
  const bytes = typeof field.str === 'string' ? Buffer.from(field.str, 'utf8') : field.str;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

export function packet(type: number, ...fields: Field[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...fields.map(encodeField)]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

const NO_ATTRS = u32(0);

/** Client requests. */
export const client = {
  init: (version = 3) => packet(FXP.INIT, u32(version)),
  open: (id: number, path: string | Buffer, pflags: number) =>
    packet(FXP.OPEN, u32(id), str(path), u32(pflags), NO_ATTRS),
  close: (id: number, handle: string) => packet(FXP.CLOSE, u32(id), str(handle)),
  read: (id: number, handle: string, offset: number, len: number) =>
    packet(FXP.READ, u32(id), str(handle), u64(offset), u32(len)),
  write: (id: number, handle: string, offset: number, data: Buffer) =>
    packet(FXP.WRITE, u32(id), str(handle), u64(offset), str(data)),
  path: (type: number, id: number, path: string | Buffer) => packet(type, u32(id), str(path)),
  mkdir: (id: number, path: string) => packet(FXP.MKDIR, u32(id), str(path), NO_ATTRS),
  setstat: (id: number, path: string, mode: number) =>
    packet(FXP.SETSTAT, u32(id), str(path), u32(0x4), u32(mode)),
  fsetstat: (id: number, handle: string, mode: number) =>
    packet(FXP.FSETSTAT, u32(id), str(handle), u32(0x4), u32(mode)),
  fstat: (id: number, handle: string) => packet(FXP.FSTAT, u32(id), str(handle)),
  opendir: (id: number, path: string) => packet(FXP.OPENDIR, u32(id), str(path)),
  readdir: (id: number, handle: string) => packet(FXP.READDIR, u32(id), str(handle)),
  rename: (id: number, from: string, to: string) => packet(FXP.RENAME, u32(id), str(from), str(to)),
  symlink: (id: number, first: string, second: string) =>
    packet(FXP.SYMLINK, u32(id), str(first), str(second)),
  extended: (id: number, name: string, ...fields: Field[]) =>
    packet(FXP.EXTENDED, u32(id), str(name), ...fields),
};

/** Server replies. */
export const server = {
  version: (version = 3) => packet(FXP.VERSION, u32(version)),
  status: (id: number, code: number, message = '') =>
    packet(FXP.STATUS, u32(id), u32(code), str(message), str('')),
  handle: (id: number, handle: string) => packet(FXP.HANDLE, u32(id), str(handle)),
  data: (id: number, data: Buffer) => packet(FXP.DATA, u32(id), str(data)),
  name: (id: number, names: string[]) =>
    packet(FXP.NAME, u32(id), u32(names.length), ...names.flatMap((n) => [str(n), str(n), u32(0)])),
  attrs: (id: number) => packet(FXP.ATTRS, u32(id), u32(0)),
};
