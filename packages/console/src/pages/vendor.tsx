import { useMemo, useState, type FormEvent } from 'react';
import {
  api,
  describeError,
  type AccessRequest,
  type Asset,
  type Grant,
  type SshKey,
  type User,
  type Zone,
} from '../api';
import { FeedbackLine, toggle, type Feedback } from '../components';
import { countdown, formatTime, windowText } from '../format';
import { useLive, useNow } from '../hooks';
import { BrowserTerminal } from '../terminals';

const CAPABILITY_TEXT: Record<string, string> = {
  shell: 'Interactive shell',
  exec: 'Run single commands',
  sftp: 'File transfer (SFTP/SCP)',
  forward: 'Port forwarding',
  modbus_write: 'Modbus writes',
};

export function RequestAccess() {
  const catalogue = useLive(
    async () => {
      const [zones, assets] = await Promise.all([
        api.get<{ zones: Zone[] }>('/api/v1/zones'),
        api.get<{ assets: Asset[] }>('/api/v1/assets'),
      ]);
      return { zones: zones.zones, assets: assets.assets };
    },
    [],
    null,
  );
  const [selected, setSelected] = useState<string[]>([]);
  const [mode, setMode] = useState<'duration' | 'window'>('duration');
  const [duration, setDuration] = useState(60);
  const [startsAt, setStartsAt] = useState('');
  const [endsAt, setEndsAt] = useState('');
  const [reason, setReason] = useState('');
  const [ticket, setTicket] = useState('');
  const [capabilities, setCapabilities] = useState<string[]>(['shell']);
  const [result, setResult] = useState<Feedback>(null);

  const zones = catalogue.data?.zones ?? [];
  const assets = catalogue.data?.assets ?? [];
  const chosenZones = useMemo(
    () => zones.filter((z) => assets.some((a) => selected.includes(a.id) && a.zoneId === z.id)),
    [zones, assets, selected],
  );
  const maxMinutes = Math.min(...chosenZones.map((z) => z.policy.maxWindowMinutes));
  const allowed =
    chosenZones.length === 0
      ? Object.keys(CAPABILITY_TEXT)
      : Object.keys(CAPABILITY_TEXT).filter((c) =>
          chosenZones.every((z) => z.policy.allowedCapabilities.includes(c)),
        );

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setResult(null);
    try {
      const created = await api.post<AccessRequest>('/api/v1/requests', {
        assetIds: selected,
        ...(mode === 'duration'
          ? { durationMinutes: duration }
          : { startsAt: new Date(startsAt).toISOString(), endsAt: new Date(endsAt).toISOString() }),
        reason,
        ...(ticket === '' ? {} : { ticket }),
        capabilities: capabilities.filter((c) => allowed.includes(c)),
      });
      setResult({
        ok: true,
        text: `Request sent (${created.id}). It waits for the approvers of ${created.zones.map((z) => z.name).join(', ')}.`,
      });
      setSelected([]);
      setReason('');
      setTicket('');
    } catch (err) {
      setResult({ ok: false, text: describeError(err) });
    }
  };

  return (
    <section>
      <h2>Request access</h2>
      {catalogue.error !== null && <p className="error">{catalogue.error}</p>}
      <form className="form" onSubmit={(e) => void submit(e)}>
        <fieldset>
          <legend>Assets</legend>
          {zones.map((zone) => {
            const inZone = assets.filter((a) => a.zoneId === zone.id);
            if (inZone.length === 0) return null;
            return (
              <div key={zone.id} className="zone-group">
                <h3>{zone.name}</h3>
                {inZone.map((a) => (
                  <label key={a.id} className="check">
                    <input
                      type="checkbox"
                      name="asset"
                      value={a.name}
                      checked={selected.includes(a.id)}
                      onChange={() => setSelected(toggle(selected, a.id))}
                    />
                    {a.name} <span className="muted">({a.protocol})</span>
                    {a.description !== undefined && a.description !== null && (
                      <span className="muted" data-testid="asset-description">
                        {' '}
                        — {a.description}
                      </span>
                    )}
                  </label>
                ))}
              </div>
            );
          })}
        </fieldset>
        {chosenZones.length > 0 && (
          <div className="limits" role="note" data-testid="zone-limits">
            <strong>Limits of the chosen zones</strong>
            <ul>
              {chosenZones.map((z) => (
                <li key={z.id}>
                  {z.name}: at most {z.policy.maxWindowMinutes} min; {z.policy.requiredApprovals}{' '}
                  approval{z.policy.requiredApprovals === 1 ? '' : 's'} needed; allows{' '}
                  {z.policy.allowedCapabilities.join(', ') || 'nothing'}
                  {z.policy.supervised ? '; sessions are supervised' : ''}
                </li>
              ))}
            </ul>
          </div>
        )}
        <fieldset>
          <legend>When</legend>
          <label className="check">
            <input
              type="radio"
              name="mode"
              checked={mode === 'duration'}
              onChange={() => setMode('duration')}
            />
            For a duration, starting when approved
          </label>
          <label className="check">
            <input
              type="radio"
              name="mode"
              checked={mode === 'window'}
              onChange={() => setMode('window')}
            />
            In a fixed window
          </label>
          {mode === 'duration' ? (
            <label>
              Minutes
              <input
                name="duration"
                type="number"
                min={1}
                max={Number.isFinite(maxMinutes) ? maxMinutes : undefined}
                value={duration}
                onChange={(e) => setDuration(Number(e.target.value))}
                required
              />
            </label>
          ) : (
            <div className="row">
              <label>
                From
                <input
                  type="datetime-local"
                  value={startsAt}
                  onChange={(e) => setStartsAt(e.target.value)}
                  required
                />
              </label>
              <label>
                Until
                <input
                  type="datetime-local"
                  value={endsAt}
                  onChange={(e) => setEndsAt(e.target.value)}
                  required
                />
              </label>
            </div>
          )}
        </fieldset>
        <label>
          Reason
          <textarea
            name="reason"
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            required
            maxLength={2000}
          />
        </label>
        <label>
          Ticket or work order <span className="muted">(optional)</span>
          <input name="ticket" value={ticket} onChange={(e) => setTicket(e.target.value)} />
        </label>
        <fieldset>
          <legend>Capabilities</legend>
          {Object.entries(CAPABILITY_TEXT).map(([c, text]) => (
            <label key={c} className="check">
              <input
                type="checkbox"
                name="capability"
                value={c}
                disabled={!allowed.includes(c)}
                checked={capabilities.includes(c) && allowed.includes(c)}
                onChange={() => setCapabilities(toggle(capabilities, c))}
              />
              {text}
              {!allowed.includes(c) && <span className="muted"> (not allowed in this zone)</span>}
            </label>
          ))}
        </fieldset>
        <FeedbackLine feedback={result} />
        <button type="submit" disabled={selected.length === 0}>
          Send request
        </button>
      </form>
    </section>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function MyRequests() {
  const { data, error } = useLive(
    () => api.get<{ requests: AccessRequest[] }>('/api/v1/requests'),
    [],
  );
  return (
    <section>
      <h2>My requests</h2>
      {error !== null && <p className="error">{error}</p>}
      {data?.requests.length === 0 && <p className="muted">You have not asked for access yet.</p>}
      <ul className="cards">
        {data?.requests.map((r) => (
          <li key={r.id} className="card" data-testid="request-card">
            <div className="card-head">
              <strong>{r.assets.map((a) => a.name).join(', ')}</strong>{' '}
              <StatusBadge status={r.status} />
            </div>
            <p>{r.reason}</p>
            <p className="muted">
              {windowText(r)}
              {r.ticket !== null && ` · ${r.ticket}`} · sent {formatTime(r.createdAt)}
            </p>
            <p className="muted">
              Approvals:{' '}
              {r.zones.map((z) => `${z.name} ${z.approvals}/${z.requiredApprovals}`).join('; ')}
            </p>
            {r.approvals.map((a) => (
              <p key={`${a.approver}-${a.decidedAt}`} className="muted">
                {a.approver} {a.decision === 'approve' ? 'approved' : 'denied'}{' '}
                {formatTime(a.decidedAt)}
                {a.comment !== null && `: ${a.comment}`}
              </p>
            ))}
            {r.decisionReason !== null && <p className="muted">Reason: {r.decisionReason}</p>}
          </li>
        ))}
      </ul>
    </section>
  );
}

interface GatewayInfo {
  ssh: { port: number; hostKeyFingerprint: string } | null;
}

export function MyGrants({ user }: { user: User }) {
  const now = useNow();
  const gateway = useLive(() => api.get<GatewayInfo>('/api/v1/gateway'), [], null);
  const ssh = gateway.data?.ssh ?? null;
  const { data, error } = useLive(
    () => api.get<{ grants: Grant[] }>(`/api/v1/grants?userId=${encodeURIComponent(user.id)}`),
    [user.id],
  );
  const grants = (data?.grants ?? []).filter(
    (g) => g.status === 'active' || g.status === 'pending',
  );
  return (
    <section>
      <h2>My access</h2>
      {error !== null && <p className="error">{error}</p>}
      {data !== null && grants.length === 0 && (
        <p className="muted">No active access. Request access and wait for approval.</p>
      )}
      <ul className="cards">
        {grants.map((g) => (
          <li key={g.id} className="card" data-testid="grant-card">
            <div className="card-head">
              <strong>{g.asset.name}</strong> <StatusBadge status={g.status} />
            </div>
            <p>
              {formatTime(g.notBefore)} – {formatTime(g.notAfter)} ·{' '}
              <span data-testid="countdown">{countdown(g.notAfter, now)}</span>
            </p>
            <p className="muted">Allowed: {g.capabilities.join(', ')}</p>
            {g.status === 'active' && g.capabilities.includes('shell') && (
              <a className="button" href={`#/connect/${encodeURIComponent(g.asset.id)}`}>
                Open terminal on {g.asset.name}
              </a>
            )}
            <details>
              <summary>Connect with your own SSH client</summary>
              <pre className="copy" data-testid="ssh-command">
                ssh -p {ssh?.port ?? 2222} {user.username}+{g.asset.name}@{window.location.hostname}
              </pre>
              <p className="muted">
                Register your public key under “SSH keys” first. The gateway asks for your one-time
                code when you have one. On first connection, check that the gateway's host key is{' '}
                <code>{ssh?.hostKeyFingerprint ?? '(unknown)'}</code>.
              </p>
            </details>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function ConnectPage({ assetId, user }: { assetId: string; user: User }) {
  const { data } = useLive(
    () => api.get<{ grants: Grant[] }>(`/api/v1/grants?userId=${encodeURIComponent(user.id)}`),
    [user.id],
    null,
  );
  const grant = data?.grants.find((g) => g.asset.id === assetId && g.status === 'active');
  const now = useNow();
  const name = grant?.asset.name ?? assetId;
  return (
    <section>
      <h2>
        Terminal · {name}
        {grant !== undefined && (
          <span className="muted" data-testid="countdown">
            {' '}
            · {countdown(grant.notAfter, now)}
          </span>
        )}
      </h2>
      <BrowserTerminal assetId={assetId} assetName={name} />
    </section>
  );
}

export function SshKeys() {
  const { data, error, reload } = useLive(
    () => api.get<{ keys: SshKey[] }>('/api/v1/me/ssh-keys'),
    [],
    null,
  );
  const [publicKey, setPublicKey] = useState('');
  const [name, setName] = useState('');
  const [message, setMessage] = useState<Feedback>(null);

  const add = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await api.post('/api/v1/me/ssh-keys', {
        publicKey: publicKey.trim(),
        ...(name === '' ? {} : { name }),
      });
      setPublicKey('');
      setName('');
      setMessage({ ok: true, text: 'Key registered.' });
      reload();
    } catch (err) {
      setMessage({ ok: false, text: describeError(err) });
    }
  };

  return (
    <section>
      <h2>SSH keys</h2>
      {error !== null && <p className="error">{error}</p>}
      <ul className="cards">
        {data?.keys.map((k) => (
          <li key={k.id} className="card">
            <strong>{k.name}</strong> <code>{k.fingerprint}</code>
            <button
              type="button"
              className="secondary"
              onClick={() => {
                api
                  .del(`/api/v1/me/ssh-keys/${encodeURIComponent(k.id)}`)
                  .then(reload, (err: unknown) =>
                    setMessage({ ok: false, text: describeError(err) }),
                  );
              }}
            >
              Remove
            </button>
          </li>
        ))}
      </ul>
      <form className="form" onSubmit={(e) => void add(e)}>
        <label>
          Public key (the line from <code>~/.ssh/id_ed25519.pub</code>)
          <textarea value={publicKey} onChange={(e) => setPublicKey(e.target.value)} required />
        </label>
        <label>
          Name <span className="muted">(optional)</span>
          <input value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <FeedbackLine feedback={message} />
        <button type="submit">Register key</button>
      </form>
    </section>
  );
}
