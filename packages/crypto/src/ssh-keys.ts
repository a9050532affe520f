import { createHash, createPublicKey, type JsonWebKey } from 'node:crypto';
import { AppError } from '@airlock/domain';

export interface SshPublicKey {
  /** The key format name, e.g. `ssh-ed25519` (for RSA keys `ssh-rsa`, though signatures use rsa-sha2-*). */
  readonly algorithm: string;
  /** The wire-format public key (RFC 4253 §6.6), exactly as decoded. */
  readonly blob: Buffer;
  readonly comment: string;
  /** `SHA256:` + unpadded base64 of sha256(blob), as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
  /** `algorithm base64` without comment: one text per key, for storage and comparison. */
  readonly normalized: string;
}

/** RSA below 2048 bits is refused (NIST SP 800-131A Rev. 2); OpenSSH refuses more than 16384. */
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 16384;
/** A 16384-bit RSA key is ~2.8 kB of base64; anything far longer is not a key. */
const MAX_LINE_LENGTH = 16 * 1024;
const MAX_COMMENT_LENGTH = 1024;

/** RFC 5656 §6.1 curve identifiers, with their JWK names and field sizes. */
const NIST_CURVES = {
  nistp256: { jwk: 'P-256', bytes: 32 },
  nistp384: { jwk: 'P-384', bytes: 48 },
  nistp521: { jwk: 'P-521', bytes: 66 },
} as const;
type NistCurve = keyof typeof NIST_CURVES;

const ACCEPTED_ALGORITHMS: ReadonlySet<string> = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/** What an algorithm name looks like (RFC 4250 §4.6.1), to tell "unknown algorithm" from garbage. */
const ALGORITHM_NAME = /^[a-z0-9][a-z0-9.+_-]{0,63}(@[a-z0-9.-]{1,64})?$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function invalid(detail: string): AppError {
  return new AppError('ssh_key.invalid', { detail });
}

/** Reads RFC 4251 §5 `string` and `mpint` values from a key blob; any overrun is an invalid key. */
class WireReader {
  readonly #buf: Buffer;
  #offset = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  string(): Buffer {
    if (this.#offset + 4 > this.#buf.length) throw invalid('the key data is truncated');
    const length = this.#buf.readUInt32BE(this.#offset);
    const start = this.#offset + 4;
    if (length > this.#buf.length - start) throw invalid('the key data is truncated');
    this.#offset = start + length;
    return this.#buf.subarray(start, start + length);
  }

  text(): string {
    return this.string().toString('latin1');
  }

  /**
   * RFC 4251 §5 mpint: two's complement, big-endian, minimal length. A
   * non-minimal or negative value is refused so that one key has exactly one
   * blob, and therefore exactly one fingerprint.
   */
  positiveMpint(): Buffer {
    const bytes = this.string();
    if (bytes.length === 0) throw invalid('an RSA parameter is zero');
    if ((bytes[0]! & 0x80) !== 0) throw invalid('an RSA parameter is negative');
    if (bytes[0] === 0 && (bytes.length === 1 || (bytes[1]! & 0x80) === 0)) {
      throw invalid('an RSA parameter is not minimally encoded');
    }
    return bytes[0] === 0 ? bytes.subarray(1) : bytes;
  }

  end(): void {
    if (this.#offset !== this.#buf.length) throw invalid('the key data has trailing bytes');
  }
}

function importJwk(jwk: JsonWebKey, what: string): ReturnType<typeof createPublicKey> {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw invalid(`the ${what} public key is not valid`);
  }
}

/** RFC 8709 §4: the Ed25519 public key is a string of exactly 32 bytes. */
function checkEd25519(reader: WireReader): void {
  const key = reader.string();
  if (key.length !== 32) throw invalid('an Ed25519 public key is 32 bytes');
  importJwk({ kty: 'OKP', crv: 'Ed25519', x: key.toString('base64url') }, 'Ed25519');
}

/**
 * RFC 5656 §3.1: string curve identifier, string Q. Q must be the
 * uncompressed point (SEC 1 §2.3.3) as OpenSSH writes it, and must lie on the
 * curve (OpenSSL checks that on import).
 */
function checkEcdsa(reader: WireReader, curve: NistCurve): void {
  if (reader.text() !== curve)
    throw invalid('the curve inside the key does not match its algorithm');
  const q = reader.string();
  const { jwk, bytes } = NIST_CURVES[curve];
  if (q.length !== 1 + 2 * bytes || q[0] !== 0x04)
    throw invalid('the ECDSA point is not an uncompressed point');
  const x = q.subarray(1, 1 + bytes).toString('base64url');
  const y = q.subarray(1 + bytes).toString('base64url');
  importJwk({ kty: 'EC', crv: jwk, x, y }, 'ECDSA');
}

/** RFC 4253 §6.6: mpint e, mpint n. */
function checkRsa(reader: WireReader): void {
  const e = reader.positiveMpint();
  const n = reader.positiveMpint();
  const bits = (n.length - 1) * 8 + (32 - Math.clz32(n[0]!));
  if (bits < RSA_MIN_BITS)
    throw invalid(`an RSA key must have at least ${RSA_MIN_BITS} bits (this one has ${bits})`);
  if (bits > RSA_MAX_BITS) throw invalid(`an RSA key may have at most ${RSA_MAX_BITS} bits`);
  if ((e[e.length - 1]! & 1) === 0 || (e.length === 1 && e[0]! < 3))
    throw invalid('the RSA public exponent is not valid');
  importJwk({ kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, 'RSA');
}

/** OpenSSH PROTOCOL.u2f: security-key keys append the FIDO application string (usually "ssh:"). */
function checkApplication(reader: WireReader): void {
  const application = reader.text();
  if (application.length === 0) throw invalid('the security-key application is empty');
}

function checkBlob(algorithm: string, blob: Buffer): void {
  const reader = new WireReader(blob);
  // The name inside the blob must equal the one outside, or a key could be
  // shown (and audited) under one algorithm and used as another.
  if (reader.text() !== algorithm)
    throw invalid('the algorithm inside the key does not match the one before it');
  switch (algorithm) {
    case 'ssh-ed25519':
      checkEd25519(reader);
      break;
    case 'sk-ssh-ed25519@openssh.com':
      checkEd25519(reader);
      checkApplication(reader);
      break;
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      checkEcdsa(reader, algorithm.slice('ecdsa-sha2-'.length) as NistCurve);
      break;
    case 'sk-ecdsa-sha2-nistp256@openssh.com':
      checkEcdsa(reader, 'nistp256');
      checkApplication(reader);
      break;
    case 'ssh-rsa':
      checkRsa(reader);
      break;
    default:
      throw new AppError('ssh_key.unsupported_algorithm', { algorithm });
  }
  reader.end();
}

function decodeBase64Strict(text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length > 0 && bytes.toString('base64') === text ? bytes : undefined;
}

/** Tabs separate fields; any other control character (a newline above all) means this is not one key line. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}

/** The name at the start of a blob, if it has one (used only to classify a rejected key). */
function innerAlgorithm(blob: Buffer | undefined): string | undefined {
  if (blob === undefined) return undefined;
  try {
    return new WireReader(blob).text();
  } catch {
    return undefined;
  }
}

/**
 * Parses one public key line as in `~/.ssh/id_*.pub` or `authorized_keys`
 * (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"): `algorithm base64 [comment]`.
 * Options (`from=…`, `command=…`) are refused: what a key may do is decided by
 * grants, not by text the key's owner supplies. DSA and certificates are not accepted.
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  const trimmed = line.trim();
  if (trimmed.length === 0) throw invalid('the key is empty');
  if (trimmed.length > MAX_LINE_LENGTH) throw invalid('the key is too long');
  // A pasted key must be one line: a second line would be a second key, silently ignored.
  if (hasControlCharacter(trimmed)) throw invalid('the key must be a single line of text');
  const tokens = trimmed.split(/[ \t]+/);
  const [algorithm = '', encoded = ''] = tokens;

  if (!ACCEPTED_ALGORITHMS.has(algorithm)) {
    if (tokens.slice(1).some((t) => ACCEPTED_ALGORITHMS.has(t) || t === 'ssh-dss')) {
      throw invalid(
        'options before the key are not accepted; paste just "algorithm key [comment]"',
      );
    }
    if (
      ALGORITHM_NAME.test(algorithm) &&
      innerAlgorithm(decodeBase64Strict(encoded)) === algorithm
    ) {
      throw new AppError('ssh_key.unsupported_algorithm', { algorithm });
    }
    throw invalid('expected an OpenSSH public key line such as "ssh-ed25519 AAAA… comment"');
  }

  const blob = decodeBase64Strict(encoded);
  if (blob === undefined) throw invalid('the key data is not valid base64');
  checkBlob(algorithm, blob);

  const comment = trimmed.slice(trimmed.indexOf(encoded, algorithm.length) + encoded.length).trim();
  if (comment.length > MAX_COMMENT_LENGTH) throw invalid('the comment is too long');
  const fingerprint = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  return { algorithm, blob, comment, fingerprint, normalized: `${algorithm} ${encoded}` };
}
