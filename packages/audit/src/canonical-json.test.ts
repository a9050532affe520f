import { describe, expect, it } from 'vitest';
import { canonicalJson, CanonicalJsonError } from './canonical-json.js';
import { computeEventHash, GENESIS_HASH, type HashedEventFields } from './chain.js';

describe('canonicalJson', () => {
  it('sorts object keys recursively and leaves out all whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}',
    );
  });

  it('keeps array order', () => {
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
  });

  it('matches the RFC 8785 §3.2.2 example', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    ) as unknown;
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts keys by UTF-16 code units as in RFC 8785 §3.2.3', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const expectedOrder = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'];
    const expected = `{${expectedOrder.map((k) => `${JSON.stringify(k)}:${JSON.stringify(input[k as keyof typeof input])}`).join(',')}}`;
    expect(canonicalJson(input)).toBe(expected);
  });

  it('formats numbers as ECMAScript does, whatever their source spelling', () => {
    expect(canonicalJson([1e21, 1e-7, -0, 0.1 + 0.2, 100, 2 ** 60, 5e-324])).toBe(
      '[1e+21,1e-7,0,0.30000000000000004,100,1152921504606847000,5e-324]',
    );
    expect(canonicalJson(JSON.parse('[1.0, 1E2, 0.50]'))).toBe('[1,100,0.5]');
  });

  it('drops undefined object members, so {a: undefined} and {} are the same event', () => {
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
    expect(canonicalJson({ a: undefined })).toBe(canonicalJson({}));
  });

  it.each([
    ['NaN', { n: Number.NaN }, '$.n'],
    ['Infinity', { n: Number.POSITIVE_INFINITY }, '$.n'],
    ['-Infinity', { list: [1, Number.NEGATIVE_INFINITY] }, '$.list[1]'],
    ['a bigint', { n: 1n }, '$.n'],
    ['a function', { f: () => 1 }, '$.f'],
    ['a symbol', { s: Symbol('s') }, '$.s'],
    ['a Date', { at: new Date(0) }, '$.at'],
    ['a Map', { m: new Map() }, '$.m'],
    [
      'a class instance',
      {
        x: new (class Secretish {
          toJSON = () => '<redacted>';
        })(),
      },
      '$.x',
    ],
    ['undefined in an array', { a: [1, undefined] }, '$.a[1]'],
    ['U+0000 in a string', { s: 'a\u0000b' }, '$.s'],
    ['U+0000 in a key', { 'a\u0000': 1 }, '$.a\u0000'],
    ['a lone high surrogate', { s: 'x\ud800' }, '$.s'],
    ['a lone low surrogate', { s: '\udc00x' }, '$.s'],
    ['undefined at the top', undefined, '$'],
  ])('refuses %s, naming where it is', (_name, value, path) => {
    expect(() => canonicalJson(value)).toThrow(CanonicalJsonError);
    try {
      canonicalJson(value);
    } catch (err) {
      expect((err as CanonicalJsonError).path).toBe(path);
    }
  });

  it('accepts surrogate pairs (astral characters) and null-prototype objects', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.k = '😀';
    expect(canonicalJson(bare)).toBe('{"k":"😀"}');
  });

  it('refuses cycles but accepts a shared (acyclic) value twice', () => {
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
  });
});

describe('computeEventHash', () => {
  const fields: HashedEventFields = {
    seq: 1,
    id: 'evt_00000000000000000000',
    occurredAt: '2024-05-01T12:00:00.000Z',
    type: 'user.login',
    code: 'AL1000I',
    actorKind: 'user',
    actorId: 'usr_00000000000000000000',
    subjectId: null,
    sourceIp: '192.0.2.1',
    outcome: 'success',
    data: { b: [1, 2], a: 'ü' },
  };

  it('is sha256 over prevHash, a newline and the canonical JSON of the fields', async () => {
    const { createHash } = await import('node:crypto');
    const body =
      '{"actorId":"usr_00000000000000000000","actorKind":"user","code":"AL1000I","data":{"a":"ü","b":[1,2]},' +
      '"id":"evt_00000000000000000000","occurredAt":"2024-05-01T12:00:00.000Z","outcome":"success","seq":1,' +
      '"sourceIp":"192.0.2.1","subjectId":null,"type":"user.login"}';
    expect(computeEventHash(GENESIS_HASH, fields)).toBe(
      createHash('sha256').update(`${GENESIS_HASH}\n${body}`).digest('hex'),
    );
  });

  it('does not depend on the key order of data (jsonb reorders keys)', () => {
    expect(computeEventHash(GENESIS_HASH, { ...fields, data: { a: 'ü', b: [1, 2] } })).toBe(
      computeEventHash(GENESIS_HASH, fields),
    );
  });

  it.each(Object.keys(fields) as (keyof HashedEventFields)[])('changes when %s changes', (key) => {
    const changed: Record<string, unknown> = { ...fields };
    const value = fields[key];
    changed[key] =
      typeof value === 'number'
        ? value + 1
        : typeof value === 'string'
          ? `${value}x`
          : value === null
            ? 'x'
            : { a: 'u', b: [1, 2] };
    expect(computeEventHash(GENESIS_HASH, changed as unknown as HashedEventFields)).not.toBe(
      computeEventHash(GENESIS_HASH, fields),
    );
  });

  it('changes when prevHash changes', () => {
    expect(computeEventHash('1'.repeat(64), fields)).not.toBe(
      computeEventHash(GENESIS_HASH, fields),
    );
  });

  it('ignores properties outside the hashed fields', () => {
    const extra = { ...fields, hash: 'abc' } as HashedEventFields;
    expect(computeEventHash(GENESIS_HASH, extra)).toBe(computeEventHash(GENESIS_HASH, fields));
  });
});
