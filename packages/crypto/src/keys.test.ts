import { sign, verify } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Secret } from '@airlock/domain';
import { deriveEd25519KeyPair, deriveKey, generateMasterKey, parseMasterKey } from './index.js';

const MASTER_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const master = (): Secret<Buffer> => parseMasterKey(MASTER_HEX);

describe('parseMasterKey', () => {
  const bytes = Buffer.from(MASTER_HEX, 'hex');

  it('accepts hex, standard base64 and URL-safe base64 (padded or not), ignoring surrounding space', () => {
    const forms = [
      MASTER_HEX,
      MASTER_HEX.toUpperCase(),
      bytes.toString('base64'),
      bytes.toString('base64url'),
      `  ${bytes.toString('base64')}\n`,
    ];
    for (const form of forms) expect(parseMasterKey(form).reveal().equals(bytes), form).toBe(true);
  });

  it('accepts the keys it generates', () => {
    const text = generateMasterKey();
    expect(Buffer.from(text, 'base64')).toHaveLength(32);
    expect(parseMasterKey(text).reveal().toString('base64')).toBe(text);
    expect(generateMasterKey()).not.toBe(text);
  });

  it('rejects anything else without echoing the value', () => {
    const bad = [
      '',
      'secret-master-key',
      MASTER_HEX.slice(2), // 31 bytes of hex
      `${MASTER_HEX}00`,
      Buffer.alloc(31, 1).toString('base64'),
      Buffer.alloc(33, 1).toString('base64'),
      `${bytes.toString('base64').slice(0, 20)}*${bytes.toString('base64').slice(21)}`,
      bytes.toString('base64').replace(/=$/, '').slice(0, -1) + 'B', // non-canonical final character
    ];
    for (const text of bad) {
      let message = '';
      try {
        parseMasterKey(text);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, text).toMatch(/master key is not valid/);
      if (text.length > 0) expect(message).not.toContain(text);
    }
  });
});

describe('Secret', () => {
  it('prints <redacted> in String, JSON and util.inspect', () => {
    const key = master();
    expect(String(key)).toBe('<redacted>');
    expect(`key=${String(key)}`).toBe('key=<redacted>');
    expect(['a', key].join(' ')).toBe('a <redacted>');
    expect(JSON.stringify({ key })).toBe('{"key":"<redacted>"}');
    expect(inspect(key)).not.toContain(MASTER_HEX.slice(0, 8));
    expect(inspect({ nested: key })).toContain('<redacted>');
  });
});

describe('deriveKey (HKDF-SHA256)', () => {
  it('is deterministic and separates purposes', () => {
    const a = deriveKey(master(), 'vault').reveal();
    expect(a).toHaveLength(32);
    expect(deriveKey(parseMasterKey(MASTER_HEX), 'vault').reveal().equals(a)).toBe(true);
    expect(deriveKey(master(), 'access-tokens').reveal().equals(a)).toBe(false);
    expect(deriveKey(master(), 'audit-checkpoints').reveal().equals(a)).toBe(false);
    expect(deriveKey(parseMasterKey(generateMasterKey()), 'vault').reveal().equals(a)).toBe(false);
  });

  it('uses RFC 5869 HKDF with salt "airlock/v1" and the purpose as info', async () => {
    const { createHmac } = await import('node:crypto');
    // RFC 5869 §2.2-2.3 by hand for one block: PRK = HMAC(salt, IKM); T(1) = HMAC(PRK, info | 0x01).
    const prk = createHmac('sha256', 'airlock/v1').update(Buffer.from(MASTER_HEX, 'hex')).digest();
    const t1 = createHmac('sha256', prk)
      .update(Buffer.concat([Buffer.from('vault'), Buffer.from([1])]))
      .digest();
    expect(deriveKey(master(), 'vault').reveal().equals(t1)).toBe(true);
  });

  it('honours the length and refuses nonsense', () => {
    expect(deriveKey(master(), 'x', 64).reveal()).toHaveLength(64);
    expect(
      deriveKey(master(), 'x', 16)
        .reveal()
        .equals(deriveKey(master(), 'x', 64).reveal().subarray(0, 16)),
    ).toBe(true);
    expect(() => deriveKey(master(), '')).toThrow(/purpose/);
    expect(() => deriveKey(master(), 'x', 0)).toThrow(/length/);
    expect(() => deriveKey(new Secret(Buffer.alloc(16)), 'x')).toThrow(/32 bytes/);
  });
});

describe('deriveEd25519KeyPair', () => {
  const message = Buffer.from('checkpoint 42');

  it('signs and verifies', () => {
    const { privateKey, publicKey } = deriveEd25519KeyPair(master(), 'audit-checkpoints');
    expect(privateKey.asymmetricKeyType).toBe('ed25519');
    expect(publicKey.type).toBe('public');
    const signature = sign(null, message, privateKey);
    expect(verify(null, message, publicKey, signature)).toBe(true);
    expect(verify(null, Buffer.from('checkpoint 43'), publicKey, signature)).toBe(false);
  });

  it('gives every replica the same key pair from the same master key', () => {
    const a = deriveEd25519KeyPair(master(), 'access-tokens');
    const b = deriveEd25519KeyPair(
      parseMasterKey(Buffer.from(MASTER_HEX, 'hex').toString('base64')),
      'access-tokens',
    );
    const der = (k: typeof a.publicKey): Buffer => k.export({ format: 'der', type: 'spki' });
    expect(der(a.publicKey).equals(der(b.publicKey))).toBe(true);
    // Ed25519 signatures are deterministic (RFC 8032 §5.1.6), so equal keys give equal signatures.
    expect(sign(null, message, a.privateKey).equals(sign(null, message, b.privateKey))).toBe(true);
    expect(verify(null, message, b.publicKey, sign(null, message, a.privateKey))).toBe(true);
  });

  it('differs by purpose and by master key', () => {
    const der = (k: {
      publicKey: { export(o: { format: 'der'; type: 'spki' }): Buffer };
    }): string => k.publicKey.export({ format: 'der', type: 'spki' }).toString('hex');
    const base = der(deriveEd25519KeyPair(master(), 'access-tokens'));
    expect(der(deriveEd25519KeyPair(master(), 'audit-checkpoints'))).not.toBe(base);
    expect(
      der(deriveEd25519KeyPair(parseMasterKey(generateMasterKey()), 'access-tokens')),
    ).not.toBe(base);
  });

  it('does not reuse the symmetric sub-key of the same purpose as its seed', () => {
    const { privateKey } = deriveEd25519KeyPair(master(), 'access-tokens');
    const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
    expect(seed.equals(deriveKey(master(), 'access-tokens').reveal())).toBe(false);
  });
});
