import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { base32Encode } from './base32.js';

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface TotpOptions {
  digits?: number;
  periodSeconds?: number;
  algorithm?: TotpAlgorithm;
}

const DEFAULTS: Readonly<Required<TotpOptions>> = Object.freeze({
  digits: 6,
  periodSeconds: 30,
  algorithm: 'sha1',
});

/** RFC 4226 §4 R6: 160-bit shared secrets are recommended (and are the SHA-1 block output size). */
const SECRET_BYTES = 20;

export function generateTotpSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

function resolve(options: TotpOptions): Required<TotpOptions> {
  const digits = options.digits ?? DEFAULTS.digits;
  const periodSeconds = options.periodSeconds ?? DEFAULTS.periodSeconds;
  // RFC 4226 §5.3: at least 6 digits; dynamic truncation yields 31 bits, so more than 10 adds nothing.
  if (!Number.isInteger(digits) || digits < 6 || digits > 10)
    throw new Error('totp: digits must be from 6 to 10');
  if (!Number.isInteger(periodSeconds) || periodSeconds < 1)
    throw new Error('totp: periodSeconds must be a positive integer');
  return { digits, periodSeconds, algorithm: options.algorithm ?? DEFAULTS.algorithm };
}

/** RFC 4226 §5.3 HOTP: HMAC over the 8-byte big-endian counter, dynamic truncation, modulo 10^digits. */
function hotp(secret: Buffer, counter: number, digits: number, algorithm: TotpAlgorithm): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, secret).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return (binary % 10 ** digits).toString().padStart(digits, '0');
}

/** RFC 6238 §4.2: T = floor((now - T0) / X) with T0 = 0. */
function timeStep(timeMs: number, periodSeconds: number): number {
  return Math.floor(timeMs / 1000 / periodSeconds);
}

export function totpCode(secret: Buffer, timeMs: number, options: TotpOptions = {}): string {
  const { digits, periodSeconds, algorithm } = resolve(options);
  const step = timeStep(timeMs, periodSeconds);
  if (step < 0) throw new Error('totp: time before the Unix epoch');
  return hotp(secret, step, digits, algorithm);
}

export interface VerifyTotpOptions extends TotpOptions {
  /** Steps accepted either side of the current one (RFC 6238 §5.2 allows one for network delay and clock drift). */
  window?: number;
  /** The step of the last code accepted for this secret; it and all earlier steps are refused. */
  lastUsedStep?: number | null;
}

/**
 * Checks a one-time code and returns the time step it belongs to, or null.
 * The caller stores the step and passes it back as `lastUsedStep`: RFC 6238
 * §5.2 requires that a verifier not accept the second attempt of the same OTP,
 * so an observed code cannot be replayed within its window.
 */
export function verifyTotp(
  secret: Buffer,
  code: string,
  timeMs: number,
  options: VerifyTotpOptions = {},
): number | null {
  const { digits, periodSeconds, algorithm } = resolve(options);
  const window = options.window ?? 1;
  if (!Number.isInteger(window) || window < 0 || window > 10)
    throw new Error('totp: window must be from 0 to 10');
  const lastUsedStep = options.lastUsedStep ?? null;
  const typed = code.replace(/\s+/g, '');
  if (typed.length !== digits || !/^\d+$/.test(typed)) return null;
  const typedBytes = Buffer.from(typed, 'ascii');
  const current = timeStep(timeMs, periodSeconds);
  let matched: number | null = null;
  // Every candidate step is computed and compared, matched or not, so the time
  // taken does not tell which step (if any) a guess hit.
  for (let step = current - window; step <= current + window; step++) {
    if (step < 0 || (lastUsedStep !== null && step <= lastUsedStep)) continue;
    const expected = Buffer.from(hotp(secret, step, digits, algorithm), 'ascii');
    if (timingSafeEqual(expected, typedBytes) && matched === null) matched = step;
  }
  return matched;
}

/**
 * The provisioning URI that authenticator apps read from a QR code (Google
 * Authenticator "Key Uri Format"): `otpauth://totp/Issuer:account?secret=…`.
 * Issuer and account are percent-encoded; the issuer is repeated as a
 * parameter because some apps read only that one.
 */
export function totpUri(options: { secret: Buffer; account: string; issuer: string }): string {
  const { secret, account, issuer } = options;
  // The label's colon separates issuer from account; neither may contain one.
  if (issuer.length === 0 || issuer.includes(':'))
    throw new Error('totp: issuer must be non-empty and contain no colon');
  if (account.length === 0 || account.includes(':'))
    throw new Error('totp: account must be non-empty and contain no colon');
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  const params = [
    `secret=${base32Encode(secret)}`,
    `issuer=${encodeURIComponent(issuer)}`,
    `algorithm=SHA1`,
    `digits=${DEFAULTS.digits}`,
    `period=${DEFAULTS.periodSeconds}`,
  ];
  return `otpauth://totp/${label}?${params.join('&')}`;
}
