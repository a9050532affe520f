/**
 * The catalogue of audit event types, after Teleport's lib/events/codes.go: a
 * dotted type says what happened, a stable code lets SIEM rules and auditors
 * match on it even if a type is ever renamed. The code's last letter is its
 * severity: I = information, W = warning (a refused or suspicious action),
 * E = error (something that should have worked did not).
 *
 * Codes are part of the audit record and of the hash: never reuse or renumber
 * one; retire a type by leaving its entry in place.
 */

interface AuditEventTypeSpec {
  readonly code: string;
  readonly description: string;
}

export const AUDIT_EVENT_TYPES = {
  // users and sign-in
  'user.login': { code: 'AL1000I', description: 'A user signed in.' },
  'user.login_failed': {
    code: 'AL1001W',
    description: 'A sign-in attempt failed (wrong password, one-time code or unknown user).',
  },
  'user.locked': {
    code: 'AL1002W',
    description: 'An account was locked after repeated failed sign-ins.',
  },
  'user.logout': { code: 'AL1003I', description: 'A user signed out.' },
  'user.created': { code: 'AL1004I', description: 'A user account was created.' },
  'user.updated': {
    code: 'AL1005I',
    description: 'A user account (roles, organization, status) was changed.',
  },
  'user.password_reset': { code: 'AL1006I', description: 'A user password was set or reset.' },
  'user.totp_enrollment_started': {
    code: 'AL1007I',
    description: 'A user started enrolling a TOTP authenticator.',
  },
  'user.totp_enrolled': { code: 'AL1008I', description: 'A user completed TOTP enrolment.' },
  'user.webhook_configured': {
    code: 'AL1009I',
    description: 'A user configured a notification webhook.',
  },
  'ssh_key.added': { code: 'AL1010I', description: 'An SSH public key was registered for a user.' },
  'ssh_key.removed': { code: 'AL1011I', description: 'An SSH public key was removed from a user.' },

  // authentication and authorisation of API calls
  'auth.token_rejected': {
    code: 'AL1100W',
    description: 'A request carried a session token that was invalid, expired or revoked.',
  },
  'auth.permission_denied': {
    code: 'AL1101W',
    description: 'An authenticated user attempted an action their roles do not allow.',
  },
  'auth.step_up_failed': {
    code: 'AL1102W',
    description: 'A decision was refused because its step-up one-time code was wrong or reused.',
  },

  // registry
  'zone.created': { code: 'AL2000I', description: 'A zone was created.' },
  'zone.updated': { code: 'AL2001I', description: 'A zone or its policy was changed.' },
  'zone.approvers_set': { code: 'AL2002I', description: 'The approvers of a zone were replaced.' },
  'asset.created': { code: 'AL2100I', description: 'An asset was created.' },
  'asset.updated': {
    code: 'AL2101I',
    description: 'An asset (endpoint, credential, pinned host key) was changed.',
  },
  'connector.created': {
    code: 'AL2200I',
    description: 'A connector was created and an enrolment token issued.',
  },
  'connector.enrolled': {
    code: 'AL2201I',
    description: 'A connector completed enrolment with its one-time token.',
  },
  'connector.connected': {
    code: 'AL2202I',
    description: 'A connector established its outbound link to the broker.',
  },
  'connector.disconnected': {
    code: 'AL2203W',
    description: 'A connector link to the broker was lost or closed.',
  },
  'connector.enrollment_refused': {
    code: 'AL2204W',
    description: 'An enrolment was refused: unknown, expired or already used token.',
  },
  'connector.assertion_refused': {
    code: 'AL2205W',
    description:
      'A connector identity assertion was refused: forged, expired, replayed, or of an unknown or unenrolled connector.',
  },
  'connector.disabled': {
    code: 'AL2207W',
    description: 'An admin disabled a connector: its identity is refused from then on.',
  },
  'connector.stream_refused': {
    code: 'AL2206W',
    description:
      'A stream through a connector was refused: the connector refused the broker request (grant, zone, window), or a connector claimed a stream of another connector or zone.',
  },

  // access requests and approvals
  'access_request.created': {
    code: 'AL3000I',
    description: 'A vendor requested access to assets.',
  },
  'access_request.approval_recorded': {
    code: 'AL3001I',
    description: 'An approver approved a request; more approvals may still be required.',
  },
  'access_request.approved': {
    code: 'AL3002I',
    description: 'A request received all required approvals.',
  },
  'access_request.denied': { code: 'AL3003I', description: 'An approver denied a request.' },
  'access_request.expired': {
    code: 'AL3004I',
    description: 'A request expired before it was decided.',
  },
  'access_request.cancelled': {
    code: 'AL3005I',
    description: 'A requester cancelled their request.',
  },
  'access_request.decision_refused': {
    code: 'AL3006W',
    description:
      'A decision on a request was refused (self-approval, not an approver, expired, already decided).',
  },

  // grants
  'grant.created': {
    code: 'AL4000I',
    description: 'A grant was created from an approved request.',
  },
  'grant.activated': { code: 'AL4001I', description: 'A grant window opened.' },
  'grant.expiring': {
    code: 'AL4002I',
    description: 'A grant is about to expire; live sessions were warned.',
  },
  'grant.expired': { code: 'AL4003I', description: 'A grant window closed.' },
  'grant.revoked': {
    code: 'AL4004I',
    description: 'A grant was revoked; its live sessions were ended.',
  },
  'grant.revoke_refused': { code: 'AL4005W', description: 'A grant revocation was refused.' },

  // sessions
  'session.start': { code: 'AL5000I', description: 'A session to an asset started under a grant.' },
  'session.end': { code: 'AL5001I', description: 'A session ended (see data.reason).' },
  'session.command': {
    code: 'AL5002I',
    description:
      'A command, exec request, file operation, forwarded connection or Modbus request was submitted.',
  },
  'session.command_blocked': {
    code: 'AL5003W',
    description: 'A command was blocked by the zone command rules.',
  },
  'session.refused': {
    code: 'AL5004W',
    description:
      'A connection to the SSH gateway was refused (unknown user, wrong key or code, no active grant, unknown asset).',
  },
  'session.command_alert': {
    code: 'AL5005W',
    description: 'A command matched an alert rule of the zone; it was forwarded and flagged.',
  },
  'session.channel_refused': {
    code: 'AL5006W',
    description: 'A channel or forwarding request outside the grant’s capabilities was refused.',
  },
  'session.asset_refused': {
    code: 'AL5007E',
    description:
      'The asset could not be reached, presented the wrong host key, or refused the vaulted credential.',
  },
  'session.terminate_requested': {
    code: 'AL5008I',
    description: 'An approver or admin asked for a live session to be terminated.',
  },
  'session.file_transfer': {
    code: 'AL5009I',
    description: 'A file transfer finished: path, direction, size and SHA-256 of the content.',
  },
  'session.watched': {
    code: 'AL5050I',
    description: 'Someone began watching a session live in the console (read-only).',
  },
  'session.exported': {
    code: 'AL5051I',
    description: 'A session was exported as a signed file (recording, commands, audit events).',
  },

  // notifications
  'notification.delivered': { code: 'AL6000I', description: 'A notification was delivered.' },
  'notification.failed': { code: 'AL6001E', description: 'A notification could not be delivered.' },

  // the audit trail itself
  'audit.verified': {
    code: 'AL7000I',
    description: 'The audit trail was verified end to end and found intact.',
  },
  'audit.verification_failed': {
    code: 'AL7001E',
    description: 'Verification of the audit trail found an altered, missing or reordered event.',
  },
  'audit.exported': { code: 'AL7002I', description: 'The audit trail was exported.' },
  'audit.checkpoint_created': {
    code: 'AL7003I',
    description: 'A signed checkpoint of the audit chain head was created.',
  },

  // the service
  'system.started': { code: 'AL8000I', description: 'A broker replica started.' },
  'system.stopped': { code: 'AL8001I', description: 'A broker replica stopped.' },
} as const satisfies { readonly [type: string]: AuditEventTypeSpec };

export type AuditEventType = keyof typeof AUDIT_EVENT_TYPES;

export function isAuditEventType(value: string): value is AuditEventType {
  return Object.hasOwn(AUDIT_EVENT_TYPES, value);
}

/** The stable code of an event type, e.g. `AL1000I` for `user.login`. */
export function auditEventCode(type: AuditEventType): string {
  return AUDIT_EVENT_TYPES[type].code;
}
