/**
 * What people do through the HTTP API before anyone connects: sign in (and
 * enrol TOTP where the role demands it), create users, describe a zone and an
 * SSH asset, request and approve access. Used by end-to-end tests that then
 * drive the broker with real clients.
 */
import { randomBytes } from 'node:crypto';
import { base32Decode, totpCode } from '@airlock/crypto';
import {
  generateClientKey,
  type ClientKey,
  type InteractiveSsh,
  type PtyExit,
  type SshdFixture,
  type SshTarget,
} from '@airlock/test-support';
import type { ApiClient, ApiResponse } from './http.js';

export interface SignedIn {
  readonly id: string;
  readonly username: string;
  readonly password: string;
  readonly token: string;
  /** Set once TOTP is enrolled. */
  readonly totpSecret: Buffer | null;
}

export interface Vendor extends SignedIn {
  readonly key: ClientKey;
}

export function randomPassword(): string {
  return `pw-${randomBytes(12).toString('base64url')}`;
}

/** Fails with the response in the message when the status is not the expected one. */
export function expectStatus(res: ApiResponse, status: number, what: string): ApiResponse {
  if (res.status !== status)
    throw new Error(`${what}: HTTP ${res.status}, expected ${status}: ${JSON.stringify(res.body)}`);
  return res;
}

/** Enrols TOTP with a signed-in token; returns the full-scope token and the secret. */
export async function enrolTotp(
  api: ApiClient,
  token: string,
): Promise<{ token: string; secret: Buffer }> {
  const started = expectStatus(await api.post('/api/v1/me/totp', {}, token), 200, 'enrol TOTP');
  const secret = base32Decode(started.body.secret as string);
  const confirmed = expectStatus(
    await api.post('/api/v1/me/totp/confirm', { code: totpCode(secret, Date.now()) }, token),
    200,
    'confirm TOTP',
  );
  return { token: confirmed.body.token as string, secret };
}

/** Signs in with a password, enrolling TOTP first when the user's role requires it. */
export async function signIn(
  api: ApiClient,
  username: string,
  password: string,
): Promise<SignedIn> {
  const login = expectStatus(
    await api.post('/api/v1/auth/login', { username, password }),
    200,
    `sign in as ${username}`,
  );
  const id = login.body.user.id as string;
  if (login.body.totpEnrollmentRequired !== true)
    return { id, username, password, token: login.body.token as string, totpSecret: null };
  const enrolled = await enrolTotp(api, login.body.token as string);
  return { id, username, password, token: enrolled.token, totpSecret: enrolled.secret };
}

export async function createUser(
  api: ApiClient,
  admin: SignedIn,
  user: { username: string; roles: string[]; organization?: string },
): Promise<SignedIn> {
  const password = randomPassword();
  expectStatus(
    await api.post('/api/v1/users', { ...user, password }, admin.token),
    201,
    `create ${user.username}`,
  );
  return signIn(api, user.username, password);
}

/** A vendor with an SSH key registered (and TOTP enrolled, if asked). */
export async function createVendor(
  api: ApiClient,
  admin: SignedIn,
  keyDir: string,
  username: string,
  options: { totp?: boolean } = {},
): Promise<Vendor> {
  let vendor = await createUser(api, admin, {
    username,
    roles: ['vendor'],
    organization: 'Nordwerk Automation',
  });
  if (options.totp === true) {
    const enrolled = await enrolTotp(api, vendor.token);
    vendor = { ...vendor, token: enrolled.token, totpSecret: enrolled.secret };
  }
  const key = await generateClientKey(keyDir, { name: username });
  expectStatus(
    await api.post(
      '/api/v1/me/ssh-keys',
      { publicKey: key.publicKey, name: 'laptop' },
      vendor.token,
    ),
    201,
    `register ${username}'s key`,
  );
  return { ...vendor, key };
}

export interface SshAsset {
  readonly zoneId: string;
  readonly assetId: string;
  readonly name: string;
}

/** A zone with one approver (1 approval required); returns its id. */
export async function createZone(
  api: ApiClient,
  admin: SignedIn,
  approver: SignedIn,
  name: string,
  capabilities: readonly string[] = ['shell', 'exec'],
): Promise<string> {
  const zone = expectStatus(
    await api.post(
      '/api/v1/zones',
      { name, policy: { requiredApprovals: 1, allowedCapabilities: capabilities } },
      admin.token,
    ),
    201,
    'create zone',
  );
  const zoneId = zone.body.id as string;
  expectStatus(
    await api.put(`/api/v1/zones/${zoneId}/approvers`, { userIds: [approver.id] }, admin.token),
    200,
    'assign approver',
  );
  return zoneId;
}

/**
 * A zone with one approver and the sshd fixture registered as its asset
 * (password vaulted, host key pinned). The zone is "Plant A / <name>" allowing
 * shell and exec unless the options say otherwise.
 */
export async function createSshAsset(
  api: ApiClient,
  admin: SignedIn,
  approver: SignedIn,
  sshd: SshdFixture,
  name: string,
  options: { zoneName?: string; capabilities?: readonly string[]; forwardPorts?: number[] } = {},
): Promise<SshAsset> {
  const zoneId = await createZone(
    api,
    admin,
    approver,
    options.zoneName ?? `Plant A / ${name}`,
    options.capabilities,
  );
  const asset = expectStatus(
    await api.post(
      '/api/v1/assets',
      {
        name,
        zoneId,
        host: sshd.host,
        port: sshd.port,
        protocol: 'ssh',
        login: sshd.user.name,
        credential: sshd.user.password,
        hostKey: sshd.hostPublicKey,
        ...(options.forwardPorts === undefined ? {} : { forwardPorts: options.forwardPorts }),
      },
      admin.token,
    ),
    201,
    'create asset',
  );
  return { zoneId, assetId: asset.body.id as string, name };
}

/** The vendor asks, the approver approves (optionally narrowing the end); returns the grant. */
export async function grantAccess(
  api: ApiClient,
  vendor: SignedIn,
  approver: SignedIn,
  asset: SshAsset,
  options: { notAfter?: Date; capabilities?: readonly string[] } = {},
): Promise<{ grantId: string; notAfter: Date }> {
  const filed = expectStatus(
    await api.post(
      '/api/v1/requests',
      {
        assetIds: [asset.assetId],
        durationMinutes: 120,
        reason: 'Quarterly maintenance of the packaging HMI',
        ticket: 'WO-4711',
        capabilities: options.capabilities ?? ['shell', 'exec'],
      },
      vendor.token,
    ),
    201,
    'file request',
  );
  const approved = expectStatus(
    await api.post(
      `/api/v1/requests/${filed.body.id as string}/approve`,
      options.notAfter === undefined ? {} : { notAfter: options.notAfter.toISOString() },
      approver.token,
    ),
    200,
    'approve request',
  );
  const grantId = (approved.body.grantIds as string[])[0];
  if (grantId === undefined) throw new Error(`no grant: ${JSON.stringify(approved.body)}`);
  const grant = expectStatus(
    await api.get(`/api/v1/grants/${grantId}`, vendor.token),
    200,
    'grant',
  );
  return { grantId, notAfter: new Date(grant.body.notAfter as string) };
}

/** `ssh -p <gateway> <user>+<asset>@<host>` with the vendor's key. */
export function gatewayTarget(
  sshAddress: string | null,
  vendor: Vendor,
  assetName: string | null,
  options: { batchMode?: boolean } = {},
): SshTarget {
  if (sshAddress === null) throw new Error('the broker printed no ssh= address');
  const colon = sshAddress.lastIndexOf(':');
  return {
    host: sshAddress.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(sshAddress.slice(colon + 1)),
    user: assetName === null ? vendor.username : `${vendor.username}+${assetName}`,
    identityFile: vendor.key.privateKeyPath,
    ...(options.batchMode === undefined ? {} : { batchMode: options.batchMode }),
  };
}

/** Polls until `check` returns a value (not undefined), or fails with what it last saw. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The vendor's live session on the asset, as an approver sees it in GET /api/v1/sessions. */
export async function liveSessionOf(
  api: ApiClient,
  viewer: SignedIn,
  vendor: SignedIn,
): Promise<string> {
  return eventually(`a live session of ${vendor.username}`, async () => {
    const res = await api.get(`/api/v1/sessions?live=true&userId=${vendor.id}`, viewer.token);
    const sessions = (res.body.sessions ?? []) as { id: string }[];
    return sessions[0]?.id;
  });
}

/** GET /api/v1/sessions/:id once it has ended. */
export interface EndedSession {
  endReason: string;
  endDetail: string | null;
  endedAt: string;
  recordingChunks: number;
}

export async function endedSession(
  api: ApiClient,
  viewer: SignedIn,
  sessionId: string,
  timeoutMs = 20_000,
): Promise<EndedSession> {
  return eventually(
    `session ${sessionId} to end`,
    async () => {
      const res = await api.get(`/api/v1/sessions/${sessionId}`, viewer.token);
      return res.status === 200 && res.body.endedAt !== null
        ? (res.body as EndedSession)
        : undefined;
    },
    timeoutMs,
  );
}

/** Waits for ssh to exit, failing with what the terminal showed if it does not. */
export async function exitOf(term: InteractiveSsh, timeoutMs = 10_000): Promise<PtyExit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `ssh did not exit within ${timeoutMs} ms; it showed: ${JSON.stringify(term.output())}`,
          ),
        ),
      timeoutMs,
    );
  });
  return Promise.race([term.exited, timeout]).finally(() => clearTimeout(timer));
}
