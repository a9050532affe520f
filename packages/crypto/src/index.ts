export {
  parseMasterKey,
  generateMasterKey,
  deriveKey,
  deriveEd25519KeyPair,
  MASTER_KEY_BYTES,
} from './keys.js';
export { hashPassword, verifyPassword, verifyPasswordDummy, needsRehash } from './passwords.js';
export { base32Encode, base32Decode } from './base32.js';
export {
  generateTotpSecret,
  totpCode,
  verifyTotp,
  totpUri,
  type TotpAlgorithm,
  type TotpOptions,
  type VerifyTotpOptions,
} from './totp.js';
export { Vault } from './vault.js';
export { parseSshPublicKey, type SshPublicKey } from './ssh-keys.js';
