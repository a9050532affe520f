import { useState, type FormEvent } from 'react';
import {
  api,
  ApiError,
  describeError,
  type AccessRequest,
  type Grant,
  type Session,
  type User,
} from '../api';
import { ErrorAlert, OneTimeCodeInput, SessionCells } from '../components';
import { countdown, formatTime, windowText } from '../format';
import { useLive, useNow } from '../hooks';
import { LiveView } from '../terminals';

function stepUpMessage(err: unknown): string {
  if (
    err instanceof ApiError &&
    (err.code === 'auth.step_up_failed' || err.code === 'totp.invalid_code')
  )
    return 'That one-time code was not accepted. Each code works once: wait for the next one and try again.';
  return describeError(err);
}

/** Ends a live session at once (Live sessions, and the page that watches one). */
function terminateSession(sessionId: string): Promise<unknown> {
  return api.post(`/api/v1/sessions/${encodeURIComponent(sessionId)}/terminate`, {
    reason: 'Terminated from the console',
  });
}

function RequestDecision({ request, onDone }: { request: AccessRequest; onDone: () => void }) {
  const [decision, setDecision] = useState<'approve' | 'deny' | null>(null);
  const [totp, setTotp] = useState('');
  const [comment, setComment] = useState('');
  const [notAfter, setNotAfter] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (decision === 'approve')
        await api.post(`/api/v1/requests/${encodeURIComponent(request.id)}/approve`, {
          totp,
          ...(comment === '' ? {} : { comment }),
          ...(notAfter === '' ? {} : { notAfter: new Date(notAfter).toISOString() }),
        });
      else
        await api.post(`/api/v1/requests/${encodeURIComponent(request.id)}/deny`, {
          totp,
          reason: comment,
        });
      setDecision(null);
      onDone();
    } catch (err) {
      setError(stepUpMessage(err));
    } finally {
      setBusy(false);
    }
  };

  if (decision === null)
    return (
      <div className="actions">
        <button type="button" onClick={() => setDecision('approve')}>
          Approve…
        </button>
        <button type="button" className="danger" onClick={() => setDecision('deny')}>
          Deny…
        </button>
      </div>
    );
  return (
    <form className="form decision" onSubmit={(e) => void submit(e)}>
      {decision === 'approve' ? (
        <>
          <label>
            Comment <span className="muted">(optional)</span>
            <input name="comment" value={comment} onChange={(e) => setComment(e.target.value)} />
          </label>
          <label>
            End earlier than asked <span className="muted">(optional)</span>
            <input
              type="datetime-local"
              name="notAfter"
              value={notAfter}
              onChange={(e) => setNotAfter(e.target.value)}
            />
          </label>
        </>
      ) : (
        <label>
          Reason for denying
          <input
            name="reason"
            value={comment}
            onChange={(e) => setComment(e.target.value)}
            required
          />
        </label>
      )}
      <label>
        Your one-time code (confirms this decision)
        <OneTimeCodeInput value={totp} onChange={setTotp} required />
      </label>
      <ErrorAlert error={error} />
      <div className="actions">
        <button type="submit" className={decision === 'deny' ? 'danger' : ''} disabled={busy}>
          {decision === 'approve' ? 'Confirm approval' : 'Confirm denial'}
        </button>
        <button type="button" className="secondary" onClick={() => setDecision(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function ApproverQueue({ user }: { user: User }) {
  const { data, error, reload } = useLive(
    () => api.get<{ requests: AccessRequest[] }>('/api/v1/requests?limit=200'),
    [],
  );
  const all = data?.requests ?? [];
  // Waiting for a decision of this approver: not their own, not already decided by them
  // (a zone that needs two approvals keeps the request pending after the first).
  const pending = all.filter(
    (r) =>
      r.status === 'pending' &&
      r.requester.id !== user.id &&
      !r.approvals.some((a) => a.approverId === user.id),
  );
  return (
    <section>
      <h2>Approvals</h2>
      {error !== null && <p className="error">{error}</p>}
      {data !== null && pending.length === 0 && (
        <p className="muted">
          No requests are waiting for you. New ones appear here by themselves.
        </p>
      )}
      <ul className="cards">
        {pending.map((r) => {
          const history = all.filter((h) => h.requester.id === r.requester.id && h.id !== r.id);
          return (
            <li key={r.id} className="card" data-testid="pending-request">
              <div className="card-head">
                <strong>
                  {r.requester.username}
                  {r.requester.organization !== null && ` (${r.requester.organization})`}
                </strong>{' '}
                asks for <strong>{r.assets.map((a) => a.name).join(', ')}</strong>
              </div>
              <dl className="facts">
                <dt>Why</dt>
                <dd data-testid="request-reason">{r.reason}</dd>
                <dt>When</dt>
                <dd>{windowText(r)}</dd>
                <dt>Ticket</dt>
                <dd>{r.ticket ?? '—'}</dd>
                <dt>What</dt>
                <dd>{r.capabilities.join(', ')}</dd>
                <dt>Approvals</dt>
                <dd>
                  {r.zones
                    .map((z) => `${z.name}: ${z.approvals}/${z.requiredApprovals}`)
                    .join('; ')}
                </dd>
                <dt>History</dt>
                <dd>
                  {history.length === 0
                    ? 'First request from this user'
                    : history
                        .slice(0, 5)
                        .map((h) => `${h.status} ${formatTime(h.createdAt)}`)
                        .join(' · ')}
                </dd>
              </dl>
              <RequestDecision request={r} onDone={reload} />
            </li>
          );
        })}
      </ul>
    </section>
  );
}

export function LiveSessions() {
  const now = useNow();
  const sessions = useLive(
    () => api.get<{ sessions: Session[] }>('/api/v1/sessions?live=true'),
    [],
  );
  const grants = useLive(() => api.get<{ grants: Grant[] }>('/api/v1/grants?status=active'), []);
  const [message, setMessage] = useState<string | null>(null);

  const terminate = (s: Session): void => {
    terminateSession(s.id).then(
      () => {
        setMessage(`Session of ${s.user.username} on ${s.asset.name} is being terminated.`);
        sessions.reload();
      },
      (err: unknown) => setMessage(describeError(err)),
    );
  };
  const revoke = (g: Grant): void => {
    api
      .post(`/api/v1/grants/${encodeURIComponent(g.id)}/revoke`, {
        reason: 'Revoked from the console',
      })
      .then(
        () => {
          setMessage(`Access of ${g.user.username} to ${g.asset.name} was revoked.`);
          grants.reload();
        },
        (err: unknown) => setMessage(describeError(err)),
      );
  };

  return (
    <section>
      <h2>Live sessions</h2>
      {message !== null && (
        <p className="status" role="status">
          {message}
        </p>
      )}
      {sessions.error !== null && <p className="error">{sessions.error}</p>}
      {sessions.data?.sessions.length === 0 && <p className="muted">Nobody is connected now.</p>}
      <table>
        <thead>
          <tr>
            <th>Vendor</th>
            <th>Asset</th>
            <th>Via</th>
            <th>Since</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {sessions.data?.sessions.map((s) => (
            <tr key={s.id} data-testid="live-session">
              <SessionCells session={s} />
              <td className="actions">
                <a className="button secondary" href={`#/watch/${encodeURIComponent(s.id)}`}>
                  Watch
                </a>
                <button type="button" className="danger" onClick={() => terminate(s)}>
                  Terminate
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Active grants</h2>
      {grants.data?.grants.length === 0 && <p className="muted">No active grants.</p>}
      <table>
        <thead>
          <tr>
            <th>Vendor</th>
            <th>Asset</th>
            <th>Until</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {grants.data?.grants.map((g) => (
            <tr key={g.id} data-testid="active-grant">
              <td>{g.user.username}</td>
              <td>{g.asset.name}</td>
              <td>
                {formatTime(g.notAfter)}{' '}
                <span className="muted">({countdown(g.notAfter, now)})</span>
              </td>
              <td>
                <button type="button" className="danger" onClick={() => revoke(g)}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function WatchPage({ sessionId }: { sessionId: string }) {
  const { data, reload } = useLive(
    () => api.get<Session>(`/api/v1/sessions/${encodeURIComponent(sessionId)}`),
    [sessionId],
  );
  const [message, setMessage] = useState<string | null>(null);
  return (
    <section>
      <h2>
        Watching {data?.user.username ?? '…'} on {data?.asset.name ?? '…'}
      </h2>
      <div className="actions">
        {data?.live === true && (
          <button
            type="button"
            className="danger"
            onClick={() => {
              terminateSession(sessionId).then(
                () => {
                  setMessage('Terminating…');
                  reload();
                },
                (err: unknown) => setMessage(describeError(err)),
              );
            }}
          >
            Terminate session
          </button>
        )}
        {data !== null && !data.live && (
          <span data-testid="session-ended">
            Ended {formatTime(data.endedAt)}: {data.endReason}
          </span>
        )}
        {message !== null && <span role="status">{message}</span>}
      </div>
      <LiveView sessionId={sessionId} />
    </section>
  );
}
