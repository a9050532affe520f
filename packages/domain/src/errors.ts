/**
 * One catalogue of every error a client can see. Each code is stable (clients
 * and tests match on it), has a kind that maps to exactly one HTTP status, and a
 * message template. Unknown errors become `internal` and their text never
 * reaches a client (see toPublicError).
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'conflict'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'unavailable'
  | 'internal';

export const HTTP_STATUS_BY_KIND: Readonly<Record<ErrorKind, number>> = Object.freeze({
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  failed_precondition: 412,
  resource_exhausted: 429,
  unavailable: 503,
  internal: 500,
});

interface ErrorSpec {
  readonly kind: ErrorKind;
  readonly message: string;
}

/** Message templates may use {name} placeholders filled from `params`. */
export const ERROR_CATALOGUE = {
  // request shape
  'request.malformed_json': {
    kind: 'invalid_argument',
    message: 'The request body is not valid JSON.',
  },
  'request.invalid': { kind: 'invalid_argument', message: 'The request is invalid: {detail}' },
  'request.body_too_large': {
    kind: 'invalid_argument',
    message: 'The request body is larger than {limit} bytes.',
  },
  'request.unsupported_media_type': {
    kind: 'invalid_argument',
    message: 'The request body must be application/json.',
  },
  'route.not_found': { kind: 'not_found', message: 'No such route.' },

  // authentication
  'auth.invalid_credentials': {
    kind: 'unauthenticated',
    message: 'Invalid username, password or one-time code.',
  },
  'auth.totp_required': {
    kind: 'unauthenticated',
    message: 'A one-time code from your authenticator app is required.',
  },
  'auth.locked': {
    kind: 'resource_exhausted',
    message: 'Too many failed sign-ins. Sign-in is locked for this account until {until}.',
  },
  'auth.token_missing': {
    kind: 'unauthenticated',
    message: 'Sign in first: no bearer token or session cookie was sent.',
  },
  'auth.token_invalid': {
    kind: 'unauthenticated',
    message: 'The session token is invalid or has expired; sign in again.',
  },
  'auth.session_ended': {
    kind: 'unauthenticated',
    message: 'This session has been signed out; sign in again.',
  },
  'auth.totp_enrollment_required': {
    kind: 'failed_precondition',
    message:
      'Your role requires two-factor authentication: enrol TOTP under /api/v1/me/totp first.',
  },
  'auth.forbidden_role': {
    kind: 'permission_denied',
    message: 'This action requires one of the roles: {roles}.',
  },
  'auth.csrf_failed': { kind: 'permission_denied', message: 'Cross-site request refused.' },
  'auth.step_up_required': {
    kind: 'permission_denied',
    message: 'Confirm this decision with a current one-time code from your authenticator app.',
  },
  'auth.step_up_failed': {
    kind: 'permission_denied',
    message: 'The one-time code is not valid (each code works once); wait for the next one.',
  },

  // TOTP
  'totp.already_enrolled': { kind: 'conflict', message: 'TOTP is already enrolled for this user.' },
  'totp.not_started': {
    kind: 'failed_precondition',
    message: 'Start TOTP enrolment first (POST /api/v1/me/totp).',
  },
  'totp.invalid_code': { kind: 'invalid_argument', message: 'The one-time code is not valid.' },

  // users and keys
  'user.not_found': { kind: 'not_found', message: 'No user {id}.' },
  'user.username_taken': { kind: 'conflict', message: 'The username {username} is already taken.' },
  'user.weak_password': {
    kind: 'invalid_argument',
    message: 'The password must be at least {min} characters long.',
  },
  'user.organization_required': {
    kind: 'invalid_argument',
    message: 'A vendor must belong to an organization.',
  },
  'ssh_key.invalid': {
    kind: 'invalid_argument',
    message: 'The SSH public key could not be parsed: {detail}',
  },
  'ssh_key.unsupported_algorithm': {
    kind: 'invalid_argument',
    message: 'SSH key algorithm {algorithm} is not accepted.',
  },
  'ssh_key.duplicate': { kind: 'conflict', message: 'This SSH key is already registered.' },
  'ssh_key.not_found': { kind: 'not_found', message: 'No SSH key {id}.' },
  'webhook.invalid_url': {
    kind: 'invalid_argument',
    message: 'The webhook URL must be an absolute http(s) URL.',
  },
  'webhook.address_not_allowed': {
    kind: 'invalid_argument',
    message:
      'Webhooks may not be sent to {address}: a private, loopback or other special-purpose address the operator has not allowed (AIRLOCK_WEBHOOK_ALLOWED_CIDRS).',
  },

  // registry
  'zone.not_found': { kind: 'not_found', message: 'No zone {id}.' },
  'zone.name_taken': { kind: 'conflict', message: 'A zone named {name} already exists.' },
  'zone.invalid_policy': {
    kind: 'invalid_argument',
    message: 'The zone policy is invalid: {detail}',
  },
  'zone.approver_not_eligible': {
    kind: 'invalid_argument',
    message: 'User {id} cannot approve: the approver role is required.',
  },
  'asset.not_found': { kind: 'not_found', message: 'No asset {id}.' },
  'asset.name_taken': { kind: 'conflict', message: 'An asset named {name} already exists.' },
  'asset.invalid': { kind: 'invalid_argument', message: 'The asset is invalid: {detail}' },
  'connector.not_found': { kind: 'not_found', message: 'No connector {id}.' },
  'connector.name_taken': {
    kind: 'conflict',
    message: 'A connector named {name} already exists in this zone.',
  },
  'connector.enrollment_invalid': {
    kind: 'unauthenticated',
    message: 'The enrolment token is invalid, has expired or has already been used.',
  },
  'connector.public_key_invalid': {
    kind: 'invalid_argument',
    message: 'The connector public key must be an Ed25519 key in SPKI PEM.',
  },
  'connector.assertion_invalid': {
    kind: 'unauthenticated',
    message: 'The connector assertion is invalid, expired or replayed.',
  },

  // requests, approvals, grants
  'access_request.not_found': { kind: 'not_found', message: 'No access request {id}.' },
  'access_request.invalid_window': {
    kind: 'invalid_argument',
    message: 'The access window is invalid: {detail}',
  },
  'access_request.window_exceeds_policy': {
    kind: 'invalid_argument',
    message: 'The window of {minutes} minutes exceeds the {max} minutes allowed in zone {zone}.',
  },
  'access_request.capability_not_allowed': {
    kind: 'invalid_argument',
    message: 'Capability {capability} is not allowed in zone {zone}.',
  },
  'access_request.not_pending': {
    kind: 'failed_precondition',
    message: 'The request is {status}, not pending.',
  },
  'access_request.expired': {
    kind: 'failed_precondition',
    message: 'The request has expired; decisions are no longer accepted.',
  },
  'access_request.self_approval': {
    kind: 'permission_denied',
    message: 'A requester cannot decide on their own request.',
  },
  'access_request.not_zone_approver': {
    kind: 'permission_denied',
    message: 'You are not an approver of any zone of this request.',
  },
  'access_request.already_decided': {
    kind: 'conflict',
    message: 'You have already decided on this request.',
  },
  'access_request.narrowing_invalid': {
    kind: 'invalid_argument',
    message: 'A narrowed window must lie within the requested window: {detail}',
  },
  'grant.not_found': { kind: 'not_found', message: 'No grant {id}.' },
  'grant.already_revoked': { kind: 'conflict', message: 'The grant is already revoked.' },
  'grant.already_expired': {
    kind: 'failed_precondition',
    message: 'The grant has already expired.',
  },

  // sessions
  'session.not_found': { kind: 'not_found', message: 'No session {id}.' },
  'session.already_ended': {
    kind: 'failed_precondition',
    message: 'The session has already ended.',
  },
  'session.export_live': {
    kind: 'failed_precondition',
    message: 'The session is still live; export it once it has ended.',
  },
  'terminal.no_active_grant': {
    kind: 'permission_denied',
    message: 'You have no active grant for {asset} at this moment.',
  },

  // service
  'service.unavailable': { kind: 'unavailable', message: 'The service is not ready: {detail}' },
  internal: { kind: 'internal', message: 'An internal error occurred; it has been logged.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

function render(template: string, params: Readonly<Record<string, unknown>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

/** An error whose code and message are safe to show to a client. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly params: Readonly<Record<string, unknown>>;
  /** Extra HTTP headers (e.g. Retry-After) the edge should send. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    params: Readonly<Record<string, unknown>> = {},
    options: { cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    super(
      render(spec.message, params),
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'AppError';
    this.code = code;
    this.kind = spec.kind;
    this.params = params;
    this.headers = options.headers ?? {};
  }

  get httpStatus(): number {
    return HTTP_STATUS_BY_KIND[this.kind];
  }
}

export interface PublicError {
  readonly status: number;
  readonly body: { error: { code: string; message: string } };
  readonly headers: Readonly<Record<string, string>>;
}

/** Maps any thrown value to what a client may see; unknown errors become `internal`. */
export function toPublicError(err: unknown): PublicError {
  const appError = err instanceof AppError ? err : new AppError('internal');
  return {
    status: appError.httpStatus,
    body: { error: { code: appError.code, message: appError.message } },
    headers: appError.headers,
  };
}

export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}
