import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * scrypt (RFC 7914) parameters for new hashes: N=2^15, r=8, p=1 costs 32 MiB
 * and tens of milliseconds per guess. Stored hashes carry their own
 * parameters, so raising these later (OWASP's cheat sheet now suggests N=2^17)
 * only makes `needsRehash` true for old hashes; they keep verifying.
 */
interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

const CURRENT: ScryptParams = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const FORMAT_VERSION = 1;

/**
 * Bounds on parameters read back from storage: an encoding is data, and a
 * tampered or corrupt row must not make one login allocate gigabytes.
 */
const LIMITS = Object.freeze({
  maxMemoryBytes: 256 * 1024 * 1024,
  maxR: 32,
  maxP: 16,
  minSalt: 16,
  maxSalt: 64,
  minKey: 16,
  maxKey: 64,
});

interface DecodedHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** scrypt's working memory (RFC 7914 §5: V is N blocks of 128·r bytes, B is p of them). */
function memoryFor({ N, r, p }: ScryptParams): number {
  return 128 * N * r + 128 * r * p;
}

/** Node refuses work above `maxmem` (default 32 MiB, exactly what N=2^15, r=8 needs for V alone). */
function maxmemFor(params: ScryptParams): number {
  return memoryFor(params) + 1024 * 1024;
}

function scryptAsync(
  password: string,
  salt: Buffer,
  keyLength: number,
  params: ScryptParams,
): Promise<Buffer> {
  const options: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: maxmemFor(params),
  };
  return new Promise((resolve, reject) => {
    // RFC 8265 §4.2 (OpaqueString) normalises to NFC, so a password typed on
    // different keyboards or systems gives the same bytes.
    scrypt(password.normalize('NFC'), salt, keyLength, options, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function encode(params: ScryptParams, salt: Buffer, hash: Buffer): string {
  return `scrypt$v=${FORMAT_VERSION}$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

const ENCODING =
  /^scrypt\$v=(\d+)\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function decodeBase64Strict(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function decode(encoded: string): DecodedHash | undefined {
  const m = ENCODING.exec(encoded);
  if (m === null) return undefined;
  const [, version, nText, rText, pText, saltText, hashText] = m;
  if (Number(version) !== FORMAT_VERSION) return undefined;
  const N = Number(nText);
  const r = Number(rText);
  const p = Number(pText);
  // RFC 7914 §2: N is a power of two greater than 1.
  if (!Number.isSafeInteger(N) || N < 2 || N > 2 ** 30 || (N & (N - 1)) !== 0) return undefined;
  if (!Number.isSafeInteger(r) || r < 1 || r > LIMITS.maxR) return undefined;
  if (!Number.isSafeInteger(p) || p < 1 || p > LIMITS.maxP) return undefined;
  if (memoryFor({ N, r, p }) > LIMITS.maxMemoryBytes) return undefined;
  const salt = decodeBase64Strict(saltText ?? '');
  const hash = decodeBase64Strict(hashText ?? '');
  if (salt === undefined || salt.length < LIMITS.minSalt || salt.length > LIMITS.maxSalt)
    return undefined;
  if (hash === undefined || hash.length < LIMITS.minKey || hash.length > LIMITS.maxKey)
    return undefined;
  return { params: { N, r, p }, salt, hash };
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(password, salt, KEY_BYTES, CURRENT);
  return encode(CURRENT, salt, hash);
}

/**
 * True when `password` matches. A malformed or out-of-bounds encoding is
 * `false`, never an exception: a corrupt row must fail closed, not crash login.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const decoded = decode(encoded);
  if (decoded === undefined) return false;
  const candidate = await scryptAsync(password, decoded.salt, decoded.hash.length, decoded.params);
  // Constant-time comparison: the time taken must not tell how many leading bytes matched.
  return timingSafeEqual(candidate, decoded.hash);
}

/**
 * Does the work of a real verification at the current parameters and fails.
 * Called when the username does not exist, so that "no such user" and "wrong
 * password" take the same time and user enumeration by timing is not possible.
 */
export async function verifyPasswordDummy(password: string): Promise<false> {
  const candidate = await scryptAsync(password, randomBytes(SALT_BYTES), KEY_BYTES, CURRENT);
  timingSafeEqual(candidate, randomBytes(KEY_BYTES));
  return false;
}

/** True when the hash was made with other parameters than the current ones (or is malformed). */
export function needsRehash(encoded: string): boolean {
  const decoded = decode(encoded);
  if (decoded === undefined) return true;
  const { params, salt, hash } = decoded;
  return (
    params.N !== CURRENT.N ||
    params.r !== CURRENT.r ||
    params.p !== CURRENT.p ||
    salt.length !== SALT_BYTES ||
    hash.length !== KEY_BYTES
  );
}
