import { randomBytes } from 'node:crypto';

/**
 * Public IDs carry a type prefix (as in Boundary) so that an ID pasted in the
 * wrong place is caught at once: `usr_…` can never be mistaken for `ast_…`.
 */
export const ID_PREFIXES = {
  user: 'usr',
  organization: 'org',
  zone: 'zon',
  asset: 'ast',
  connector: 'con',
  accessRequest: 'req',
  grant: 'grt',
  session: 'ses',
  command: 'cmd',
  sshKey: 'key',
  authSession: 'aus',
  auditEvent: 'evt',
  job: 'job',
  webhookDelivery: 'whd',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;
export type IdPrefix = (typeof ID_PREFIXES)[IdKind];

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case
const BODY_LENGTH = 20; // 100 bits of randomness

export function newId(kind: IdKind): string {
  const bytes = randomBytes(BODY_LENGTH);
  let body = '';
  for (const byte of bytes) body += ALPHABET[byte & 31];
  return `${ID_PREFIXES[kind]}_${body}`;
}

const ID_PATTERN = /^[a-z]{3}_[0-9a-hjkmnp-tv-z]{20}$/;

export function isIdOf(kind: IdKind, value: string): boolean {
  return ID_PATTERN.test(value) && value.startsWith(`${ID_PREFIXES[kind]}_`);
}

/** JSON-schema pattern for an ID of one kind (used by route schemas). */
export function idPattern(kind: IdKind): string {
  return `^${ID_PREFIXES[kind]}_[0-9a-hjkmnp-tv-z]{20}$`;
}
