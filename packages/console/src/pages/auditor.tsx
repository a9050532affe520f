import { useState, type FormEvent } from 'react';
import {
  api,
  describeError,
  query,
  type AuditEvent,
  type Command,
  type Session,
  type Zone,
} from '../api';
import { SessionCells, ZoneOptions } from '../components';
import { formatOffset, formatTime } from '../format';
import { useLive } from '../hooks';
import { Replay } from '../terminals';

const END_REASONS = [
  'client_exit',
  'expired',
  'revoked',
  'terminated',
  'idle_timeout',
  'asset_unreachable',
  'connector_lost',
  'broker_shutdown',
  'audit_failure',
  'error',
];

export function SessionList() {
  const zones = useLive(() => api.get<{ zones: Zone[] }>('/api/v1/zones'), [], null);
  const [filter, setFilter] = useState({
    zoneId: '',
    asset: '',
    vendor: '',
    organization: '',
    endReason: '',
    from: '',
    to: '',
  });
  const { data, error } = useLive(
    () =>
      api.get<{ sessions: Session[] }>(
        `/api/v1/sessions${query({
          zoneId: filter.zoneId,
          endReason: filter.endReason,
          from: filter.from === '' ? undefined : new Date(filter.from).toISOString(),
          to: filter.to === '' ? undefined : new Date(filter.to).toISOString(),
          limit: 500,
        })}`,
      ),
    [filter.zoneId, filter.endReason, filter.from, filter.to],
  );
  const contains = (value: string | null, needle: string): boolean =>
    needle === '' || (value ?? '').toLowerCase().includes(needle.toLowerCase());
  const sessions = (data?.sessions ?? []).filter(
    (s) =>
      contains(s.asset.name, filter.asset) &&
      contains(s.user.username, filter.vendor) &&
      contains(s.user.organization, filter.organization),
  );
  const set = (key: keyof typeof filter) => (e: { target: { value: string } }) =>
    setFilter({ ...filter, [key]: e.target.value });

  return (
    <section>
      <h2>Sessions</h2>
      <form className="filters" aria-label="Filter sessions" onSubmit={(e) => e.preventDefault()}>
        <label>
          Zone
          <select value={filter.zoneId} onChange={set('zoneId')}>
            <option value="">All zones</option>
            <ZoneOptions zones={zones.data?.zones} />
          </select>
        </label>
        <label>
          Asset
          <input value={filter.asset} onChange={set('asset')} />
        </label>
        <label>
          Vendor
          <input value={filter.vendor} onChange={set('vendor')} />
        </label>
        <label>
          Organisation
          <input value={filter.organization} onChange={set('organization')} />
        </label>
        <label>
          End reason
          <select value={filter.endReason} onChange={set('endReason')}>
            <option value="">Any</option>
            {END_REASONS.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" value={filter.from} onChange={set('from')} />
        </label>
        <label>
          To
          <input type="datetime-local" value={filter.to} onChange={set('to')} />
        </label>
      </form>
      {error !== null && <p className="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>Vendor</th>
            <th>Asset</th>
            <th>Via</th>
            <th>Started</th>
            <th>Ended</th>
            <th>Reason</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sessions.map((s) => (
            <tr key={s.id} data-testid="session-row">
              <SessionCells session={s} />
              <td>{s.live ? 'live' : formatTime(s.endedAt)}</td>
              <td>{s.endReason ?? ''}</td>
              <td>
                <a href={`#/replay/${encodeURIComponent(s.id)}`}>Replay</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function ReplayPage({ sessionId }: { sessionId: string }) {
  const { data } = useLive(
    () => api.get<Session>(`/api/v1/sessions/${encodeURIComponent(sessionId)}`),
    [sessionId],
    null,
  );
  return (
    <section>
      <h2>
        Replay: {data?.user.username ?? '…'} on {data?.asset.name ?? '…'}
      </h2>
      {data !== null && (
        <p className="muted">
          {formatTime(data.startedAt)} – {formatTime(data.endedAt)} · {data.endReason ?? 'live'} ·{' '}
          {data.protocol === 'web' ? 'browser' : 'SSH'} from {data.clientAddress ?? '?'}
        </p>
      )}
      {data !== null && !data.live && (
        <p>
          <a
            className="button secondary"
            href={`/api/v1/sessions/${encodeURIComponent(sessionId)}/export`}
            download
          >
            Export for an outside auditor
          </a>{' '}
          <span className="muted">
            One signed file: recording, commands and audit events; checked offline with{' '}
            <code>pnpm airlock verify-export</code>.
          </span>
        </p>
      )}
      <Replay sessionId={sessionId} />
    </section>
  );
}

export function CommandSearch() {
  const [q, setQ] = useState('');
  const [results, setResults] = useState<Command[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const search = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(null);
    try {
      const found = await api.get<{ commands: Command[] }>(`/api/v1/commands${query({ q })}`);
      setResults(found.commands);
    } catch (err) {
      setError(describeError(err));
    }
  };

  return (
    <section>
      <h2>Command search</h2>
      <form className="filters" role="search" onSubmit={(e) => void search(e)}>
        <label>
          Words in the command
          <input name="q" value={q} onChange={(e) => setQ(e.target.value)} required />
        </label>
        <button type="submit">Search</button>
      </form>
      {error !== null && <p className="error">{error}</p>}
      {results !== null && results.length === 0 && <p className="muted">No command matches.</p>}
      {results !== null && results.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>When</th>
              <th>Vendor</th>
              <th>Asset</th>
              <th>Command</th>
              <th>Outcome</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {results.map((c) => (
              <tr key={c.id} data-testid="command-row">
                <td>{formatTime(c.occurredAt)}</td>
                <td>{c.user.username}</td>
                <td>{c.asset.name}</td>
                <td>
                  <code>{c.command}</code>
                </td>
                <td>{c.outcome}</td>
                <td>
                  <a href={`#/replay/${encodeURIComponent(c.sessionId)}`}>
                    Replay at {formatOffset(c.offsetMs)}
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

interface Verification {
  ok: boolean;
  events: number;
  head: { seq: number; hash: string } | null;
  checkpoint: { seq: number; createdAt: string } | null;
  firstBad?: { seq: number; reason: string; message: string };
}

export function AuditTrail() {
  const [type, setType] = useState('');
  const [subjectId, setSubjectId] = useState('');
  const { data, error } = useLive(
    () =>
      api.get<{ events: AuditEvent[] }>(
        `/api/v1/audit${query({ type, subjectId, order: 'desc', limit: 200 })}`,
      ),
    [type, subjectId],
  );
  const [verification, setVerification] = useState<Verification | null>(null);
  const [verifyError, setVerifyError] = useState<string | null>(null);

  const verify = (): void => {
    setVerifyError(null);
    api
      .get<Verification>('/api/v1/audit/verify')
      .then(setVerification, (err: unknown) => setVerifyError(describeError(err)));
  };

  return (
    <section>
      <h2>Audit trail</h2>
      <div className="actions">
        <button type="button" onClick={verify}>
          Verify the trail
        </button>
        {verification !== null && (
          <span
            className={verification.ok ? 'success' : 'error'}
            role="status"
            data-testid="verify-result"
          >
            {verification.ok
              ? `Intact: ${verification.events} events, head #${verification.head?.seq ?? 0}${verification.checkpoint === null ? '' : `, last signed checkpoint #${verification.checkpoint.seq}`}.`
              : `BROKEN at event #${verification.firstBad?.seq ?? '?'}: ${verification.firstBad?.message ?? ''}`}
          </span>
        )}
        {verifyError !== null && <span className="error">{verifyError}</span>}
      </div>
      <form className="filters" aria-label="Filter events" onSubmit={(e) => e.preventDefault()}>
        <label>
          Type
          <input
            value={type}
            placeholder="e.g. session.command"
            onChange={(e) => setType(e.target.value)}
          />
        </label>
        <label>
          Subject id
          <input value={subjectId} onChange={(e) => setSubjectId(e.target.value)} />
        </label>
      </form>
      {error !== null && <p className="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>#</th>
            <th>When</th>
            <th>Type</th>
            <th>Actor</th>
            <th>Outcome</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {data?.events.map((e) => (
            <tr key={e.seq} data-testid="audit-row">
              <td>{e.seq}</td>
              <td>{formatTime(e.occurredAt)}</td>
              <td>
                <code>{e.type}</code>
              </td>
              <td>
                {e.actor.kind}
                {e.actor.id !== null && ` ${e.actor.id}`}
                {e.actor.ip !== null && <span className="muted"> {e.actor.ip}</span>}
              </td>
              <td>{e.outcome}</td>
              <td>
                <code className="data">{JSON.stringify(e.data)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
