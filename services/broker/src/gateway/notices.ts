import type { EndReason } from '../features/sessions/repository.js';

/** What the vendor reads in their terminal when Airlock speaks. */
export function noticeBytes(text: string): Buffer {
  return Buffer.from(`\r\n\x1b[1;33m[airlock] ${text}\x1b[0m\r\n`, 'utf8');
}

export function endReasonText(reason: EndReason, detail: string | null): string {
  const why = detail === null || detail === '' ? '' : `: ${detail}`;
  switch (reason) {
    case 'expired':
      return 'Your access window has ended; the session is closed.';
    case 'revoked':
      return `Your access was revoked by an approver${why}`;
    case 'terminated':
      return `This session was terminated by an approver${why}`;
    case 'idle_timeout':
      return 'The session was idle too long and has been closed.';
    case 'audit_failure':
      return 'The audit store is unavailable; the session is closed for safety.';
    case 'broker_shutdown':
      return 'The Airlock broker is shutting down; the session is closed.';
    case 'connector_lost':
      return 'The connection to the zone was lost; the session is closed.';
    case 'asset_unreachable':
      return `The asset could not be reached${why}`;
    case 'error':
      return `The session failed${why}`;
    case 'client_exit':
      return 'Session closed.';
  }
}
