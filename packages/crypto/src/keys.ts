import {
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { Secret } from '@airlock/domain';

export const MASTER_KEY_BYTES = 32;

/**
 * Fixed HKDF salt (RFC 5869 §3.1: a non-secret salt adds domain separation even
 * when it is constant). Changing it changes every derived key, so it carries a version.
 */
const HKDF_SALT = Buffer.from('airlock/v1', 'utf8');

/** RFC 5869 §2.3: L <= 255 * HashLen. */
const HKDF_MAX_LENGTH = 255 * 32;

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_STANDARD = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64_URL = /^[A-Za-z0-9_-]+={0,2}$/;

const MASTER_KEY_FORMAT_ERROR =
  'The master key is not valid: expected 32 bytes written as base64 (standard or URL-safe) or as 64 hex characters.';

/**
 * Reads the master key from configuration. The message never includes the
 * value (it may be a near-miss of the real key, e.g. with one character lost).
 */
export function parseMasterKey(text: string): Secret<Buffer> {
  const trimmed = text.trim();
  let bytes: Buffer | undefined;
  // Hex first: 64 hex characters are also valid base64 (of 48 bytes).
  if (HEX_KEY.test(trimmed)) {
    bytes = Buffer.from(trimmed, 'hex');
  } else if (BASE64_STANDARD.test(trimmed) || BASE64_URL.test(trimmed)) {
    const unpadded = trimmed.replace(/=+$/, '');
    const decoded = Buffer.from(unpadded.replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
    // Node's decoder skips characters it does not understand; re-encoding
    // catches any text that was not exactly one canonical base64 value.
    if (decoded.toString('base64url') === unpadded.replace(/\+/g, '-').replace(/\//g, '_'))
      bytes = decoded;
  }
  if (bytes?.length !== MASTER_KEY_BYTES) throw new Error(MASTER_KEY_FORMAT_ERROR);
  return new Secret(bytes);
}

export function generateMasterKey(): string {
  return randomBytes(MASTER_KEY_BYTES).toString('base64');
}

function assertMasterKey(masterKey: Secret<Buffer>): Buffer {
  const bytes = masterKey.reveal();
  if (!Buffer.isBuffer(bytes) || bytes.length !== MASTER_KEY_BYTES) {
    throw new Error(`The master key must be ${MASTER_KEY_BYTES} bytes.`);
  }
  return bytes;
}

/**
 * One sub-key per purpose (HKDF-SHA256, RFC 5869), so that a key used to
 * encrypt the vault is never also used to sign tokens: compromising the use of
 * one sub-key reveals nothing about another, and the purpose string is the
 * HKDF `info` that makes them independent.
 */
export function deriveKey(masterKey: Secret<Buffer>, purpose: string, length = 32): Secret<Buffer> {
  if (purpose.length === 0) throw new Error('deriveKey: purpose must not be empty');
  if (!Number.isInteger(length) || length < 1 || length > HKDF_MAX_LENGTH) {
    throw new Error(`deriveKey: length must be an integer from 1 to ${HKDF_MAX_LENGTH}`);
  }
  const okm = hkdfSync(
    'sha256',
    assertMasterKey(masterKey),
    HKDF_SALT,
    Buffer.from(purpose, 'utf8'),
    length,
  );
  return new Secret(Buffer.from(okm));
}

/**
 * PKCS#8 PrivateKeyInfo for Ed25519 (RFC 8410 §7) up to the 32-byte seed:
 * SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
 */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * An Ed25519 key pair that every replica derives alike from the master key, so
 * tokens or checkpoints signed by one replica verify on all others without
 * distributing a key. The seed comes from its own HKDF `info` (prefixed
 * `ed25519:`), so `deriveEd25519KeyPair(k, p)` never shares key material with
 * `deriveKey(k, p)` even when a caller reuses the purpose string.
 */
export function deriveEd25519KeyPair(
  masterKey: Secret<Buffer>,
  purpose: string,
): { privateKey: KeyObject; publicKey: KeyObject } {
  if (purpose.length === 0) throw new Error('deriveEd25519KeyPair: purpose must not be empty');
  const seed = deriveKey(masterKey, `ed25519:${purpose}`, 32).reveal();
  const der = Buffer.concat([ED25519_PKCS8_PREFIX, seed]);
  try {
    const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    return { privateKey, publicKey: createPublicKey(privateKey) };
  } finally {
    der.fill(0);
    seed.fill(0);
  }
}
