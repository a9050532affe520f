/**
 * The connector's own record of what it carried and what it refused: JSON
 * lines appended to a file under its data dir (mode 0600). Defence in depth:
 * if the broker were compromised, the zone still has its own account of
 * every stream it was asked to open.
 */
import { appendFileSync } from 'node:fs';

export type ConnectorAuditEvent =
  | 'connector.enrolled'
  | 'connector.enrollment_refused'
  | 'link.refused'
  | 'stream.opened'
  | 'stream.closed'
  | 'stream.refused';

export class ConnectorAuditLog {
  constructor(readonly path: string) {}

  /** Synchronous: a refusal is on disk before it is reported to the broker. */
  append(event: ConnectorAuditEvent, data: Record<string, unknown>): void {
    const line = JSON.stringify({ at: new Date().toISOString(), event, ...data });
    appendFileSync(this.path, `${line}\n`, { mode: 0o600 });
  }
}
