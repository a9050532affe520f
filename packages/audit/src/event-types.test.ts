import { describe, expect, it } from 'vitest';
import { AUDIT_EVENT_TYPES, auditEventCode, isAuditEventType } from './event-types.js';

const REQUIRED = [
  'user.login',
  'user.login_failed',
  'user.locked',
  'user.logout',
  'user.created',
  'user.updated',
  'user.password_reset',
  'user.totp_enrollment_started',
  'user.totp_enrolled',
  'user.webhook_configured',
  'ssh_key.added',
  'ssh_key.removed',
  'auth.token_rejected',
  'auth.permission_denied',
  'zone.created',
  'zone.updated',
  'zone.approvers_set',
  'asset.created',
  'asset.updated',
  'connector.created',
  'access_request.created',
  'access_request.approval_recorded',
  'access_request.approved',
  'access_request.denied',
  'access_request.expired',
  'access_request.cancelled',
  'access_request.decision_refused',
  'grant.created',
  'grant.activated',
  'grant.expiring',
  'grant.expired',
  'grant.revoked',
  'grant.revoke_refused',
  'session.start',
  'session.end',
  'session.command',
  'session.command_blocked',
  'notification.delivered',
  'notification.failed',
  'audit.verified',
  'audit.exported',
  'audit.checkpoint_created',
  'system.started',
  'system.stopped',
];

describe('audit event catalogue', () => {
  const entries = Object.entries(AUDIT_EVENT_TYPES);

  it('contains every type other components emit', () => {
    for (const type of REQUIRED) expect(isAuditEventType(type), type).toBe(true);
  });

  it('gives every type a unique code AL<4 digits><I|W|E>', () => {
    const codes = entries.map(([, spec]) => spec.code);
    for (const code of codes) expect(code).toMatch(/^AL\d{4}[IWE]$/);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('names every type as the database accepts it and documents it', () => {
    for (const [type, spec] of entries) {
      expect(type).toMatch(/^[a-z_]+(\.[a-z_]+)+$/); // audit_events_type_format
      expect(spec.description.length).toBeGreaterThan(10);
    }
  });

  it('marks refusals as warnings and failures as errors', () => {
    expect(auditEventCode('user.login_failed')).toMatch(/W$/);
    expect(auditEventCode('session.command_blocked')).toMatch(/W$/);
    expect(auditEventCode('notification.failed')).toMatch(/E$/);
    expect(auditEventCode('user.login')).toMatch(/I$/);
  });

  it('does not treat inherited properties as types', () => {
    expect(isAuditEventType('toString')).toBe(false);
    expect(isAuditEventType('constructor')).toBe(false);
  });
});
