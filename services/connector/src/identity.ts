/**
 * The connector's identity: an Ed25519 key pair generated here (the private
 * key never leaves the data dir, mode 0600), and what enrolment returned —
 * its id and zone, the broker's audience, and the broker's grant-signing
 * public key, pinned from then on.
 */
import { generateKeyPairSync, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ENROLL_PATH, publicKeyFromPem, publicKeyToPem } from '@airlock/tunnel';
import type { TlsClientOptions } from './tls.js';

export interface ConnectorIdentity {
  readonly connectorId: string;
  readonly zoneId: string;
  readonly name: string;
  readonly audience: string;
  /** The broker's grant-token key, pinned at enrolment. */
  readonly brokerPublicKey: KeyObject;
  readonly privateKey: KeyObject;
}

interface IdentityFile {
  connectorId: string;
  zoneId: string;
  name: string;
  audience: string;
  brokerPublicKey: string;
  enrolledAt: string;
  brokerUrl: string;
}

export class EnrollmentError extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'EnrollmentError';
  }
}

const IDENTITY_FILE = 'identity.json';
const KEY_FILE = 'connector.key';
/** Written by `pnpm demo` so that `pnpm connector` can enrol the demo connector. */
export const ENROLLMENT_TOKEN_FILE = 'enrollment-token';

function writePrivate(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The data dir holds the private key: only the connector's user may enter it, whoever made it. */
export function ensureDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
}

export function loadIdentity(dataDir: string): ConnectorIdentity | null {
  const path = join(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) return null;
  const file = JSON.parse(readFileSync(path, 'utf8')) as IdentityFile;
  const privateKey = createPrivateKey(readFileSync(join(dataDir, KEY_FILE)));
  return {
    connectorId: file.connectorId,
    zoneId: file.zoneId,
    name: file.name,
    audience: file.audience,
    brokerPublicKey: publicKeyFromPem(file.brokerPublicKey),
    privateKey,
  };
}

/** A one-time token the operator (or `pnpm demo`) left in the data dir, if any. */
export function storedEnrollmentToken(dataDir: string): string | null {
  const path = join(dataDir, ENROLLMENT_TOKEN_FILE);
  return existsSync(path) ? readFileSync(path, 'utf8').trim() || null : null;
}

/** Once used, the token is worthless; remove it rather than leave a secret-looking file behind. */
export function discardStoredEnrollmentToken(dataDir: string): void {
  rmSync(join(dataDir, ENROLLMENT_TOKEN_FILE), { force: true });
}

function postJson(
  url: URL,
  body: unknown,
  tls: TlsClientOptions,
): Promise<{ status: number; body: unknown }> {
  const payload = Buffer.from(JSON.stringify(body));
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 15_000,
        ...tls,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the broker did not answer in time')));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Generates the key pair, presents the token and the public key, and stores
 * the identity. The private key is written (0600) before the broker hears of
 * the public key, so a crash in between cannot leave an enrolled key lost.
 */
export async function enroll(options: {
  dataDir: string;
  brokerUrl: URL;
  token: string;
  version: string;
  tls: TlsClientOptions;
}): Promise<ConnectorIdentity> {
  ensureDataDir(options.dataDir);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writePrivate(
    join(options.dataDir, KEY_FILE),
    privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  );
  const url = new URL(options.brokerUrl.href);
  url.pathname = `${options.brokerUrl.pathname.replace(/\/+$/, '')}${ENROLL_PATH}`;
  const res = await postJson(
    url,
    { token: options.token, publicKey: publicKeyToPem(publicKey), version: options.version },
    options.tls,
  );
  if (res.status !== 200) {
    const error = (res.body as { error?: { code?: string; message?: string } }).error;
    throw new EnrollmentError(
      `enrolment refused (HTTP ${res.status}): ${error?.message ?? JSON.stringify(res.body)}`,
      error?.code ?? null,
    );
  }
  const body = res.body as Omit<IdentityFile, 'enrolledAt' | 'brokerUrl'>;
  const file: IdentityFile = {
    connectorId: body.connectorId,
    zoneId: body.zoneId,
    name: body.name,
    audience: body.audience,
    brokerPublicKey: body.brokerPublicKey,
    enrolledAt: new Date().toISOString(),
    brokerUrl: options.brokerUrl.href,
  };
  // Parse before storing: a broker key that is not Ed25519 is refused here.
  const brokerPublicKey = publicKeyFromPem(file.brokerPublicKey);
  writePrivate(join(options.dataDir, IDENTITY_FILE), `${JSON.stringify(file, null, 2)}\n`);
  return {
    connectorId: file.connectorId,
    zoneId: file.zoneId,
    name: file.name,
    audience: file.audience,
    brokerPublicKey,
    privateKey,
  };
}
