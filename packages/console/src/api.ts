/**
 * The console speaks the same /api/v1 as every other client, authenticated by
 * the httpOnly session cookie the broker sets at sign-in (the console never
 * sees the token). State-changing calls are same-origin fetches, which the
 * broker checks (Origin) on top of SameSite=Strict.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Role = 'admin' | 'approver' | 'auditor' | 'vendor';

export interface User {
  id: string;
  username: string;
  displayName: string | null;
  organization: string | null;
  roles: Role[];
  totpEnabled: boolean;
}

export interface Zone {
  id: string;
  name: string;
  description: string | null;
  policy: {
    requiredApprovals: number;
    maxWindowMinutes: number;
    allowedCapabilities: string[];
    supervised: boolean;
    idleTimeoutMinutes: number;
  };
  approverIds: string[];
}

export interface Asset {
  id: string;
  name: string;
  zoneId: string;
  protocol: string;
  description?: string | null;
}

export interface AccessRequest {
  id: string;
  requester: { id: string; username: string; organization: string | null };
  status: string;
  startsAt: string | null;
  endsAt: string | null;
  durationMinutes: number | null;
  reason: string;
  ticket: string | null;
  capabilities: string[];
  assets: { id: string; name: string; zoneId: string }[];
  zones: { zoneId: string; name: string; requiredApprovals: number; approvals: number }[];
  approvals: {
    approverId: string;
    approver: string;
    decision: string;
    comment: string | null;
    decidedAt: string;
  }[];
  grantIds: string[];
  createdAt: string;
  expiresAt: string;
  decisionReason: string | null;
}

export interface Grant {
  id: string;
  requestId: string;
  user: { id: string; username: string };
  asset: { id: string; name: string };
  zoneId: string;
  status: string;
  notBefore: string;
  notAfter: string;
  capabilities: string[];
  revokeReason: string | null;
}

export interface Session {
  id: string;
  grantId: string;
  user: { id: string; username: string; organization: string | null };
  asset: { id: string; name: string };
  zoneId: string;
  protocol: string;
  clientAddress: string | null;
  clientVersion: string | null;
  startedAt: string;
  endedAt: string | null;
  endReason: string | null;
  endDetail: string | null;
  live: boolean;
  bytesFromClient: number;
  bytesToClient: number;
}

export interface Command {
  id: string;
  sessionId: string;
  user: { id: string; username: string };
  asset: { id: string; name: string };
  kind: string;
  command: string;
  occurredAt: string;
  offsetMs: number;
  outcome: string;
  rule: string | null;
}

export interface AuditEvent {
  seq: number;
  id: string;
  occurredAt: string;
  type: string;
  code: string;
  actor: { kind: string; id: string | null; ip: string | null };
  subjectId: string | null;
  outcome: string;
  data: unknown;
  hash: string;
}

export interface SshKey {
  id: string;
  name: string;
  algorithm: string;
  fingerprint: string;
  createdAt: string;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(
      res.status,
      error?.code ?? 'http_error',
      error?.message ?? `The broker answered HTTP ${res.status}.`,
    );
  }
  return parsed as T;
}

export const api = {
  get: <T>(path: string): Promise<T> => call<T>('GET', path),
  post: <T>(path: string, body: unknown = {}): Promise<T> => call<T>('POST', path, body),
  put: <T>(path: string, body: unknown): Promise<T> => call<T>('PUT', path, body),
  patch: <T>(path: string, body: unknown): Promise<T> => call<T>('PATCH', path, body),
  del: <T>(path: string): Promise<T> => call<T>('DELETE', path),
};

/** The text for an error, as a person should read it. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return `Could not reach the broker (${err.message}).`;
  return 'Something went wrong.';
}

export function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

/** ws(s)://<this origin><path>: the console's WebSocket endpoints. */
export function wsUrl(path: string): string {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}${path}`;
}
