import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Secret } from '@airlock/domain';
import { deriveKey } from './keys.js';

const FORMAT_VERSION = 1;
/** NIST SP 800-38D §8.2: 96-bit nonces; random ones are safe up to 2^32 seals per key. */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES;

/** One message for every failure: which check failed would help an attacker probe. */
const OPEN_FAILED = 'vault: cannot open sealed value';

/**
 * Encrypts asset credentials at rest (DESIGN invariant 6) with AES-256-GCM
 * under the master key's `vault` sub-key.
 *
 * Sealed format: version (1 byte) | nonce (12) | ciphertext | tag (16).
 *
 * The caller's `aad` names the owner of the value (e.g.
 * `asset:ast_…:credential`); GCM authenticates it without storing it, so a
 * sealed value copied into another row does not open there. The version byte
 * is authenticated too, so it cannot be changed to select another format.
 */
export class Vault {
  readonly #key: Secret<Buffer>;

  constructor(masterKey: Secret<Buffer>) {
    this.#key = deriveKey(masterKey, 'vault', 32);
  }

  seal(plaintext: string | Buffer, aad: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const header = Buffer.concat([Buffer.from([FORMAT_VERSION]), nonce]);
    const cipher = createCipheriv('aes-256-gcm', this.#key.reveal(), nonce, {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(additionalData(aad));
    const body = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
    const ciphertext = Buffer.concat([cipher.update(body), cipher.final()]);
    return Buffer.concat([header, ciphertext, cipher.getAuthTag()]);
  }

  open(sealed: Buffer, aad: string): Secret<Buffer> {
    try {
      if (
        !Buffer.isBuffer(sealed) ||
        sealed.length < HEADER_BYTES + TAG_BYTES ||
        sealed[0] !== FORMAT_VERSION
      ) {
        throw new Error(OPEN_FAILED);
      }
      const nonce = sealed.subarray(1, HEADER_BYTES);
      const ciphertext = sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES);
      const tag = sealed.subarray(sealed.length - TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', this.#key.reveal(), nonce, {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(additionalData(aad));
      decipher.setAuthTag(tag);
      return new Secret(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
    } catch {
      // No cause attached: OpenSSL's message is no use to an operator and some use to an attacker.
      throw new Error(OPEN_FAILED);
    }
  }

  openString(sealed: Buffer, aad: string): Secret<string> {
    const bytes = this.open(sealed, aad).reveal();
    try {
      return new Secret(bytes.toString('utf8'));
    } finally {
      bytes.fill(0);
    }
  }
}

function additionalData(aad: string): Buffer {
  if (aad.length === 0) throw new Error('vault: aad must name the owner of the value');
  return Buffer.concat([Buffer.from([FORMAT_VERSION]), Buffer.from(aad, 'utf8')]);
}
