import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chunkHash,
  decodeFrames,
  encodeFrames,
  MalformedRecordingError,
  outputText,
  RECORDING_GENESIS_HASH,
  type ChunkContent,
  type RecordedFrame,
} from './index.js';

describe('encodeFrames / decodeFrames', () => {
  it('round-trips frames, including empty data and a large frame', () => {
    const frames: RecordedFrame[] = [
      { offsetMs: 1_000, data: Buffer.from('hello') },
      { offsetMs: 1_000, data: Buffer.alloc(0) },
      { offsetMs: 1_003, data: randomBytes(3 * 1024 * 1024) },
      { offsetMs: 1_000 + 2 ** 32 - 1, data: Buffer.from([0, 255]) },
    ];
    const encoded = encodeFrames(frames, 1_000);
    expect(encoded.length).toBe(frames.reduce((n, f) => n + 8 + f.data.length, 0));
    const decoded = decodeFrames(encoded, 1_000);
    expect(decoded.map((f) => f.offsetMs)).toEqual(frames.map((f) => f.offsetMs));
    decoded.forEach((f, i) => expect(f.data.equals(frames[i]!.data)).toBe(true));
  });

  it('uses the documented layout: u32 BE delta, u32 BE length, bytes', () => {
    const encoded = encodeFrames([{ offsetMs: 305, data: Buffer.from('ab') }], 300);
    expect(encoded.toString('hex')).toBe('00000005' + '00000002' + '6162');
  });

  it('encodes no frames as no bytes and decodes no bytes as no frames', () => {
    expect(encodeFrames([], 0).length).toBe(0);
    expect(decodeFrames(Buffer.alloc(0), 42)).toEqual([]);
  });

  it('refuses frames before their chunk or beyond a u32 delta', () => {
    expect(() => encodeFrames([{ offsetMs: 9, data: Buffer.from('x') }], 10)).toThrow(RangeError);
    expect(() => encodeFrames([{ offsetMs: 2 ** 32, data: Buffer.from('x') }], 0)).toThrow(
      RangeError,
    );
  });

  it('throws on truncated or overlong data instead of reading less', () => {
    const good = encodeFrames(
      [
        { offsetMs: 0, data: Buffer.from('abc') },
        { offsetMs: 1, data: Buffer.from('defg') },
      ],
      0,
    );
    // Cut inside the second header, inside the second body, and a length that runs past the end.
    expect(() => decodeFrames(good.subarray(0, 15), 0)).toThrow(MalformedRecordingError);
    expect(() => decodeFrames(good.subarray(0, good.length - 1), 0)).toThrow(
      /claims 4 bytes but only 3 remain/,
    );
    const overlong = Buffer.from(good);
    overlong.writeUInt32BE(1_000, 4);
    expect(() => decodeFrames(overlong, 0)).toThrow(MalformedRecordingError);
    expect(() => decodeFrames(Buffer.from([1, 2, 3]), 0)).toThrow(/frame header needs 8/);
  });
});

describe('chunkHash', () => {
  const base: ChunkContent = {
    sessionId: 'ses_0123456789abcdefghjk',
    seq: 1,
    channel: 0,
    kind: 'o',
    offsetMs: 12,
    data: Buffer.from('output'),
  };

  it('is sha256 hex, deterministic, and chains on the previous hash', () => {
    const h = chunkHash(RECORDING_GENESIS_HASH, base);
    expect(RECORDING_GENESIS_HASH).toBe('0'.repeat(64));
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(chunkHash(RECORDING_GENESIS_HASH, { ...base, data: Buffer.from('output') })).toBe(h);
    expect(chunkHash(h, base)).not.toBe(h);
  });

  it('changes when any covered field changes', () => {
    const h = chunkHash(RECORDING_GENESIS_HASH, base);
    const variants: ChunkContent[] = [
      { ...base, sessionId: 'ses_0123456789abcdefghjm' },
      { ...base, seq: 2 },
      { ...base, channel: 1 },
      { ...base, kind: 'i' },
      { ...base, offsetMs: 13 },
      { ...base, data: Buffer.from('outpuT') },
      { ...base, data: Buffer.alloc(0) },
    ];
    const hashes = variants.map((v) => chunkHash(RECORDING_GENESIS_HASH, v));
    expect(new Set([h, ...hashes]).size).toBe(variants.length + 1);
  });

  it('refuses values the table would not store as given', () => {
    expect(() => chunkHash(RECORDING_GENESIS_HASH, { ...base, offsetMs: 1.5 })).toThrow(RangeError);
    expect(() => chunkHash(RECORDING_GENESIS_HASH, { ...base, seq: 0 })).toThrow(RangeError);
    expect(() => chunkHash(RECORDING_GENESIS_HASH, { ...base, kind: 'x' as 'o' })).toThrow(
      TypeError,
    );
    expect(() => chunkHash('abc', base)).toThrow(TypeError);
  });
});

describe('outputText', () => {
  it('decodes UTF-8 across frames and strips control sequences', () => {
    const euro = Buffer.from('€', 'utf8');
    const frames: RecordedFrame[] = [
      { offsetMs: 0, data: Buffer.from('\x1b]0;user@plc: ~\x07\x1b[1;32mok\x1b[0m ') },
      { offsetMs: 1, data: Buffer.concat([Buffer.from('price '), euro.subarray(0, 1)]) },
      {
        offsetMs: 2,
        data: Buffer.concat([euro.subarray(1), Buffer.from('5\r\n\x1b(B\x1b[?2004hnext\x07\r\n')]),
      },
    ];
    expect(outputText(frames)).toBe('ok price €5\nnext\n');
  });
});
