import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { hashPassword, needsRehash, verifyPassword, verifyPasswordDummy } from './index.js';

const ENCODING = /^scrypt\$v=1\$N=32768,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/;

describe('password hashing', () => {
  it('round-trips and refuses a wrong password', async () => {
    const encoded = await hashPassword('correct horse battery staple');
    expect(encoded).toMatch(ENCODING);
    await expect(verifyPassword('correct horse battery staple', encoded)).resolves.toBe(true);
    await expect(verifyPassword('correct horse battery stapl', encoded)).resolves.toBe(false);
    await expect(verifyPassword('Correct horse battery staple', encoded)).resolves.toBe(false);
    await expect(verifyPassword('', encoded)).resolves.toBe(false);
  });

  it('salts every hash', async () => {
    const [a, b] = await Promise.all([
      hashPassword('same password'),
      hashPassword('same password'),
    ]);
    expect(a).not.toBe(b);
    expect(a.split('$')[3]).not.toBe(b.split('$')[3]);
    await expect(verifyPassword('same password', a)).resolves.toBe(true);
    await expect(verifyPassword('same password', b)).resolves.toBe(true);
  });

  it('treats composed and decomposed Unicode as the same password (NFC)', async () => {
    const encoded = await hashPassword('caf\u00e9-pass');
    await expect(verifyPassword('cafe\u0301-pass', encoded)).resolves.toBe(true);
  });

  it('reads the parameters from the encoding, so older (cheaper) hashes still verify', async () => {
    // Made with N=2^14 by this module's encoding rules (salt and key from a fixed run).
    const { scryptSync } = await import('node:crypto');
    const salt = Buffer.alloc(16, 7);
    const hash = scryptSync('old password', salt, 32, { N: 2 ** 14, r: 8, p: 1 });
    const old = `scrypt$v=1$N=16384,r=8,p=1$${salt.toString('base64')}$${hash.toString('base64')}`;
    await expect(verifyPassword('old password', old)).resolves.toBe(true);
    await expect(verifyPassword('new password', old)).resolves.toBe(false);
    expect(needsRehash(old)).toBe(true);
    expect(needsRehash(await hashPassword('x'))).toBe(false);
  });

  it('returns false (never throws) for malformed encodings', async () => {
    const good = await hashPassword('pw');
    const [, , , salt = '', hash = ''] = good.split('$');
    const malformed = [
      '',
      'pw',
      'argon2id$v=19$m=65536,t=3,p=4$abc$def',
      `scrypt$v=2$N=32768,r=8,p=1$${salt}$${hash}`,
      `scrypt$v=1$N=32767,r=8,p=1$${salt}$${hash}`, // N not a power of two
      `scrypt$v=1$N=1073741824,r=8,p=1$${salt}$${hash}`, // would need 1 TiB
      `scrypt$v=1$N=32768,r=0,p=1$${salt}$${hash}`,
      `scrypt$v=1$N=32768,r=8,p=1$${salt}$`,
      `scrypt$v=1$N=32768,r=8,p=1$$${hash}`,
      `scrypt$v=1$N=32768,r=8,p=1$${salt}$${hash}$extra`,
      `scrypt$v=1$N=32768,r=8,p=1$${salt}$not*base64`,
      `scrypt$v=1$N=32768,r=8,p=1$${salt}$${hash.slice(0, 8)}`, // key too short
      good.replace('N=32768', 'N=0x8000'),
      good.replace(/.$/, '\n'),
    ];
    for (const encoded of malformed) {
      await expect(verifyPassword('pw', encoded), encoded).resolves.toBe(false);
      expect(needsRehash(encoded)).toBe(true);
    }
  });

  it('dummy verification is false and takes about as long as a real one', async () => {
    const encoded = await hashPassword('pw');
    await verifyPasswordDummy('warm-up');
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const start = performance.now();
      for (let i = 0; i < 4; i++) await fn();
      return performance.now() - start;
    };
    const real = await time(() => verifyPassword('wrong', encoded));
    const dummy = await time(() => verifyPasswordDummy('wrong'));
    await expect(verifyPasswordDummy('pw')).resolves.toBe(false);
    // Loose bound: both are one scrypt at the same parameters; the point is
    // that the dummy is not an instant return (which would be ~0 ms).
    expect(dummy / real).toBeGreaterThan(0.4);
    expect(dummy / real).toBeLessThan(2.5);
  });
});
