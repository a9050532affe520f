import { describe, expect, it } from 'vitest';
import {
  base32Decode,
  base32Encode,
  generateTotpSecret,
  totpCode,
  totpUri,
  verifyTotp,
} from './index.js';

// RFC 6238 Appendix B: the seed is the ASCII string "1234567890" repeated to the hash's length.
const RFC6238_SECRETS = {
  sha1: Buffer.from('12345678901234567890', 'ascii'),
  sha256: Buffer.from('12345678901234567890123456789012', 'ascii'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii'),
} as const;

const RFC6238_VECTORS: readonly [seconds: number, sha1: string, sha256: string, sha512: string][] =
  [
    [59, '94287082', '46119246', '90693936'],
    [1111111109, '07081804', '68084774', '25091201'],
    [1111111111, '14050471', '67062674', '99943326'],
    [1234567890, '89005924', '91819424', '93441116'],
    [2000000000, '69279037', '90698825', '38618901'],
    [20000000000, '65353130', '77737706', '47863826'],
  ];

describe('totpCode (RFC 6238 Appendix B)', () => {
  it.each(RFC6238_VECTORS)(
    'at T=%i s gives the RFC values for SHA-1, SHA-256 and SHA-512',
    (seconds, sha1, sha256, sha512) => {
      const timeMs = seconds * 1000;
      expect(totpCode(RFC6238_SECRETS.sha1, timeMs, { digits: 8 })).toBe(sha1);
      expect(totpCode(RFC6238_SECRETS.sha256, timeMs, { digits: 8, algorithm: 'sha256' })).toBe(
        sha256,
      );
      expect(totpCode(RFC6238_SECRETS.sha512, timeMs, { digits: 8, algorithm: 'sha512' })).toBe(
        sha512,
      );
    },
  );

  it('is HOTP of the time step (RFC 4226 Appendix D values with a 1-second period)', () => {
    const hotp = [
      '755224',
      '287082',
      '359152',
      '969429',
      '338314',
      '254676',
      '287922',
      '162583',
      '399871',
      '520489',
    ];
    hotp.forEach((code, counter) => {
      expect(totpCode(RFC6238_SECRETS.sha1, counter * 1000, { periodSeconds: 1 })).toBe(code);
    });
  });

  it('defaults to 6 digits and a 30-second period', () => {
    const secret = generateTotpSecret();
    expect(secret).toHaveLength(20);
    const stepStart = 56_666_666 * 30_000;
    expect(totpCode(secret, stepStart)).toMatch(/^\d{6}$/);
    expect(totpCode(secret, stepStart + 29_999)).toBe(totpCode(secret, stepStart));
    expect(totpCode(secret, stepStart + 30_000)).not.toBe(totpCode(secret, stepStart));
    expect(totpCode(RFC6238_SECRETS.sha1, 59_000)).toBe('287082'); // last 6 digits of 94287082
  });

  it('refuses fewer than 6 digits', () => {
    expect(() => totpCode(RFC6238_SECRETS.sha1, 0, { digits: 4 })).toThrow(/digits/);
  });
});

describe('verifyTotp', () => {
  const secret = Buffer.from('12345678901234567890', 'ascii');
  const now = 1_111_111_111_000; // step 37037037, 1 s into its window
  const step = Math.floor(now / 30_000);
  const codeAt = (s: number): string => totpCode(secret, s * 30_000);

  it('returns the time step of a valid code', () => {
    expect(verifyTotp(secret, codeAt(step), now)).toBe(step);
  });

  it('accepts one step either side by default and nothing further', () => {
    expect(verifyTotp(secret, codeAt(step - 1), now)).toBe(step - 1);
    expect(verifyTotp(secret, codeAt(step + 1), now)).toBe(step + 1);
    expect(verifyTotp(secret, codeAt(step - 2), now)).toBeNull();
    expect(verifyTotp(secret, codeAt(step + 2), now)).toBeNull();
  });

  it('honours a wider or a zero window', () => {
    expect(verifyTotp(secret, codeAt(step - 2), now, { window: 2 })).toBe(step - 2);
    expect(verifyTotp(secret, codeAt(step - 1), now, { window: 0 })).toBeNull();
    expect(verifyTotp(secret, codeAt(step), now, { window: 0 })).toBe(step);
  });

  it('refuses a replayed code: a step at or before lastUsedStep is never accepted again', () => {
    const code = codeAt(step);
    const used = verifyTotp(secret, code, now);
    expect(used).toBe(step);
    expect(verifyTotp(secret, code, now, { lastUsedStep: used })).toBeNull();
    // Still refused 20 s later, when the same code would otherwise be accepted from the window.
    expect(verifyTotp(secret, code, now + 20_000, { lastUsedStep: used })).toBeNull();
    expect(verifyTotp(secret, codeAt(step - 1), now, { lastUsedStep: used })).toBeNull();
    // The next step's code is fine.
    expect(verifyTotp(secret, codeAt(step + 1), now + 30_000, { lastUsedStep: used })).toBe(
      step + 1,
    );
    expect(verifyTotp(secret, code, now, { lastUsedStep: null })).toBe(step);
  });

  it('refuses wrong, short, long and non-numeric codes, and tolerates spaces', () => {
    const good = codeAt(step);
    const wrong = ((Number(good) + 1) % 1_000_000).toString().padStart(6, '0');
    expect(verifyTotp(secret, wrong, now)).toBeNull();
    expect(verifyTotp(secret, good.slice(0, 5), now)).toBeNull();
    expect(verifyTotp(secret, `${good}0`, now)).toBeNull();
    expect(verifyTotp(secret, '12a456', now)).toBeNull();
    expect(verifyTotp(secret, '', now)).toBeNull();
    expect(verifyTotp(secret, `${good.slice(0, 3)} ${good.slice(3)}`, now)).toBe(step);
  });

  it('refuses a code made from another secret', () => {
    expect(verifyTotp(generateTotpSecret(), codeAt(step), now)).toBeNull();
  });
});

describe('base32 (RFC 4648 §10 test vectors)', () => {
  const vectors: readonly [string, string][] = [
    ['', ''],
    ['f', 'MY======'],
    ['fo', 'MZXQ===='],
    ['foo', 'MZXW6==='],
    ['foob', 'MZXW6YQ='],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI======'],
  ];

  it.each(vectors)('%j <-> %s', (plain, encoded) => {
    expect(base32Encode(Buffer.from(plain))).toBe(encoded.replace(/=+$/, ''));
    expect(base32Decode(encoded).toString()).toBe(plain);
    expect(base32Decode(encoded.replace(/=+$/, '')).toString()).toBe(plain);
  });

  it('decodes lowercase and grouped input', () => {
    expect(base32Decode('mzxw 6ytb oi').toString()).toBe('foobar');
    expect(base32Decode('MZXW-6YTB-OI').toString()).toBe('foobar');
  });

  it('rejects characters outside the alphabet and impossible lengths', () => {
    expect(() => base32Decode('MZXW1YTB')).toThrow(/invalid character/); // 1 is not base32
    expect(() => base32Decode('MZXW0YTB')).toThrow(/invalid character/);
    expect(() => base32Decode('MZ=XW6YTB')).toThrow(/invalid character/);
    expect(() => base32Decode('MZX')).toThrow(/invalid length/);
  });

  it('round-trips random secrets', () => {
    for (let i = 0; i < 50; i++) {
      const secret = generateTotpSecret().subarray(0, i % 21);
      expect(base32Decode(base32Encode(secret)).equals(secret)).toBe(true);
    }
  });
});

describe('totpUri', () => {
  it('builds an otpauth URI with encoded issuer and account', () => {
    const secret = Buffer.from('12345678901234567890', 'ascii');
    const uri = totpUri({ secret, account: 'jane doe@acme', issuer: 'Airlock & Co' });
    expect(uri).toBe(
      'otpauth://totp/Airlock%20%26%20Co:jane%20doe%40acme' +
        '?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Airlock%20%26%20Co&algorithm=SHA1&digits=6&period=30',
    );
    const parsed = new URL(uri);
    expect(parsed.protocol).toBe('otpauth:');
    expect(base32Decode(parsed.searchParams.get('secret') ?? '').equals(secret)).toBe(true);
    expect(parsed.searchParams.get('issuer')).toBe('Airlock & Co');
  });

  it('refuses a colon in issuer or account (it separates them in the label)', () => {
    const secret = generateTotpSecret();
    expect(() => totpUri({ secret, account: 'a:b', issuer: 'Airlock' })).toThrow(/account/);
    expect(() => totpUri({ secret, account: 'a', issuer: 'Air:lock' })).toThrow(/issuer/);
  });
});
