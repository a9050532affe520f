import { useState, type FormEvent } from 'react';
import { api, describeError, type Asset, type Role, type User, type Zone } from '../api';
import { FeedbackLine, toggle, ZoneOptions, type Feedback } from '../components';
import { formatTime } from '../format';
import { useLive } from '../hooks';

const CAPABILITIES = ['shell', 'exec', 'sftp', 'forward', 'modbus_write'];
const ROLES: Role[] = ['vendor', 'approver', 'auditor', 'admin'];

interface AdminAsset extends Asset {
  host?: string;
  port?: number;
  login?: string | null;
  hasCredential?: boolean;
  hostKeyFingerprint?: string | null;
}

interface Connector {
  id: string;
  zoneId: string;
  name: string;
  status: string;
  version: string | null;
  address: string | null;
  enrolledAt: string | null;
  lastSeenAt: string | null;
}

function ZoneEditor({
  zone,
  approvers,
  onSaved,
}: {
  zone: Zone;
  approvers: User[];
  onSaved: () => void;
}) {
  const [requiredApprovals, setRequiredApprovals] = useState(zone.policy.requiredApprovals);
  const [maxWindowMinutes, setMaxWindowMinutes] = useState(zone.policy.maxWindowMinutes);
  const [capabilities, setCapabilities] = useState(zone.policy.allowedCapabilities);
  const [supervised, setSupervised] = useState(zone.policy.supervised);
  const [zoneApprovers, setZoneApprovers] = useState(zone.approverIds);
  const [feedback, setFeedback] = useState<Feedback>(null);

  const save = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await api.patch(`/api/v1/zones/${encodeURIComponent(zone.id)}`, {
        policy: {
          requiredApprovals,
          maxWindowMinutes,
          allowedCapabilities: capabilities,
          supervised,
        },
      });
      await api.put(`/api/v1/zones/${encodeURIComponent(zone.id)}/approvers`, {
        userIds: zoneApprovers,
      });
      setFeedback({ ok: true, text: 'Saved.' });
      onSaved();
    } catch (err) {
      setFeedback({ ok: false, text: describeError(err) });
    }
  };

  return (
    <form className="form" onSubmit={(e) => void save(e)} aria-label={`Policy of ${zone.name}`}>
      <div className="row">
        <label>
          Approvals needed
          <input
            type="number"
            min={1}
            max={5}
            value={requiredApprovals}
            onChange={(e) => setRequiredApprovals(Number(e.target.value))}
          />
        </label>
        <label>
          Longest window (minutes)
          <input
            type="number"
            min={1}
            value={maxWindowMinutes}
            onChange={(e) => setMaxWindowMinutes(Number(e.target.value))}
          />
        </label>
      </div>
      <fieldset>
        <legend>Allowed capabilities</legend>
        {CAPABILITIES.map((c) => (
          <label key={c} className="check">
            <input
              type="checkbox"
              checked={capabilities.includes(c)}
              onChange={() => setCapabilities(toggle(capabilities, c))}
            />
            {c}
          </label>
        ))}
      </fieldset>
      <label className="check">
        <input type="checkbox" checked={supervised} onChange={() => setSupervised(!supervised)} />
        Sessions must be supervised
      </label>
      <fieldset>
        <legend>Approvers</legend>
        {approvers.length === 0 && <p className="muted">No user holds the approver role yet.</p>}
        {approvers.map((u) => (
          <label key={u.id} className="check">
            <input
              type="checkbox"
              checked={zoneApprovers.includes(u.id)}
              onChange={() => setZoneApprovers(toggle(zoneApprovers, u.id))}
            />
            {u.displayName ?? u.username}
          </label>
        ))}
      </fieldset>
      <FeedbackLine feedback={feedback} />
      <button type="submit">Save zone</button>
    </form>
  );
}

export function AdminZones() {
  const zones = useLive(() => api.get<{ zones: Zone[] }>('/api/v1/zones'), [], null);
  const users = useLive(() => api.get<{ users: User[] }>('/api/v1/users?role=approver'), [], null);
  const [name, setName] = useState('');
  const [feedback, setFeedback] = useState<Feedback>(null);

  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await api.post('/api/v1/zones', { name, policy: {} });
      setName('');
      setFeedback({ ok: true, text: `Zone “${name}” created with the default policy.` });
      zones.reload();
    } catch (err) {
      setFeedback({ ok: false, text: describeError(err) });
    }
  };

  return (
    <section>
      <h2>Zones and their policy</h2>
      {zones.error !== null && <p className="error">{zones.error}</p>}
      <ul className="cards">
        {zones.data?.zones.map((z) => (
          <li key={z.id} className="card" data-testid="zone-card">
            <h3>{z.name}</h3>
            <ZoneEditor zone={z} approvers={users.data?.users ?? []} onSaved={zones.reload} />
          </li>
        ))}
      </ul>
      <form className="form card" onSubmit={(e) => void create(e)} aria-label="New zone">
        <h3>New zone</h3>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <FeedbackLine feedback={feedback} />
        <button type="submit">Create zone</button>
      </form>
    </section>
  );
}

export function AdminAssets() {
  const zones = useLive(() => api.get<{ zones: Zone[] }>('/api/v1/zones'), [], null);
  const assets = useLive(() => api.get<{ assets: AdminAsset[] }>('/api/v1/assets'), [], null);
  const empty = {
    name: '',
    zoneId: '',
    host: '',
    port: '22',
    protocol: 'ssh',
    login: '',
    credential: '',
    hostKey: '',
  };
  const [form, setForm] = useState(empty);
  const [feedback, setFeedback] = useState<Feedback>(null);
  const set = (key: keyof typeof empty) => (e: { target: { value: string } }) =>
    setForm({ ...form, [key]: e.target.value });
  const zoneName = (id: string): string => zones.data?.zones.find((z) => z.id === id)?.name ?? id;

  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await api.post('/api/v1/assets', {
        name: form.name,
        zoneId: form.zoneId,
        host: form.host,
        port: Number(form.port),
        protocol: form.protocol,
        ...(form.login === '' ? {} : { login: form.login }),
        ...(form.credential === '' ? {} : { credential: form.credential }),
        ...(form.hostKey === '' ? {} : { hostKey: form.hostKey.trim() }),
      });
      setFeedback({
        ok: true,
        text: `Asset ${form.name} created; its credential is stored sealed.`,
      });
      setForm(empty);
      assets.reload();
    } catch (err) {
      setFeedback({ ok: false, text: describeError(err) });
    }
  };

  return (
    <section>
      <h2>Assets</h2>
      {assets.error !== null && <p className="error">{assets.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Zone</th>
            <th>Endpoint</th>
            <th>Login</th>
            <th>Credential</th>
            <th>Host key</th>
          </tr>
        </thead>
        <tbody>
          {assets.data?.assets.map((a) => (
            <tr key={a.id} data-testid="asset-row">
              <td>{a.name}</td>
              <td>{zoneName(a.zoneId)}</td>
              <td>
                {a.protocol}://{a.host}:{a.port}
              </td>
              <td>{a.login ?? '—'}</td>
              <td>{a.hasCredential === true ? 'stored (write-only)' : 'none'}</td>
              <td>
                <code>{a.hostKeyFingerprint ?? 'not pinned'}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="form card" onSubmit={(e) => void create(e)} aria-label="New asset">
        <h3>New asset</h3>
        <div className="row">
          <label>
            Name (DNS label)
            <input value={form.name} onChange={set('name')} required />
          </label>
          <label>
            Zone
            <select value={form.zoneId} onChange={set('zoneId')} required>
              <option value="">Choose…</option>
              <ZoneOptions zones={zones.data?.zones} />
            </select>
          </label>
        </div>
        <div className="row">
          <label>
            Host
            <input value={form.host} onChange={set('host')} required />
          </label>
          <label>
            Port
            <input type="number" min={1} max={65535} value={form.port} onChange={set('port')} />
          </label>
          <label>
            Protocol
            <select value={form.protocol} onChange={set('protocol')}>
              {['ssh', 'tcp', 'modbus'].map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
        </div>
        <div className="row">
          <label>
            Login
            <input value={form.login} onChange={set('login')} autoComplete="off" />
          </label>
          <label>
            Credential <span className="muted">(write-only: never shown again)</span>
            <input
              type="password"
              value={form.credential}
              onChange={set('credential')}
              autoComplete="new-password"
            />
          </label>
        </div>
        <label>
          Pinned host key (<code>ssh-ed25519 AAAA…</code>)
          <input value={form.hostKey} onChange={set('hostKey')} />
        </label>
        <FeedbackLine feedback={feedback} />
        <button type="submit">Create asset</button>
      </form>
    </section>
  );
}

export function AdminConnectors() {
  const zones = useLive(() => api.get<{ zones: Zone[] }>('/api/v1/zones'), [], null);
  const connectors = useLive(() => api.get<{ connectors: Connector[] }>('/api/v1/connectors'), []);
  const [name, setName] = useState('');
  const [zoneId, setZoneId] = useState('');
  const [enrolment, setEnrolment] = useState<{
    name: string;
    token: string;
    expiresAt: string;
  } | null>(null);
  const [feedback, setFeedback] = useState<Feedback>(null);
  const zoneName = (id: string): string => zones.data?.zones.find((z) => z.id === id)?.name ?? id;

  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      const created = await api.post<{
        name: string;
        enrollmentToken: string;
        enrollmentExpiresAt: string;
      }>('/api/v1/connectors', { name, zoneId });
      setEnrolment({
        name: created.name,
        token: created.enrollmentToken,
        expiresAt: created.enrollmentExpiresAt,
      });
      setFeedback(null);
      setName('');
      connectors.reload();
    } catch (err) {
      setFeedback({ ok: false, text: describeError(err) });
    }
  };

  return (
    <section>
      <h2>Connectors</h2>
      {connectors.error !== null && <p className="error">{connectors.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Zone</th>
            <th>Status</th>
            <th>Last seen</th>
            <th>Address</th>
          </tr>
        </thead>
        <tbody>
          {connectors.data?.connectors.map((c) => (
            <tr key={c.id} data-testid="connector-row">
              <td>{c.name}</td>
              <td>{zoneName(c.zoneId)}</td>
              <td>
                <span className={`badge status-${c.status}`}>{c.status}</span>
              </td>
              <td>{formatTime(c.lastSeenAt)}</td>
              <td>{c.address ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {enrolment !== null && (
        <div className="card" role="status" data-testid="enrolment-token">
          <strong>Enrolment token for {enrolment.name}</strong> (shown once, valid until{' '}
          {formatTime(enrolment.expiresAt)}):
          <pre className="copy">{enrolment.token}</pre>
        </div>
      )}
      <form className="form card" onSubmit={(e) => void create(e)} aria-label="New connector">
        <h3>New connector</h3>
        <div className="row">
          <label>
            Name (DNS label)
            <input value={name} onChange={(e) => setName(e.target.value)} required />
          </label>
          <label>
            Zone
            <select value={zoneId} onChange={(e) => setZoneId(e.target.value)} required>
              <option value="">Choose…</option>
              <ZoneOptions zones={zones.data?.zones} />
            </select>
          </label>
        </div>
        <FeedbackLine feedback={feedback} />
        <button type="submit">Create and get an enrolment token</button>
      </form>
    </section>
  );
}

interface AdminUser extends User {
  disabled: boolean;
  createdAt: string;
}

export function AdminUsers() {
  const users = useLive(() => api.get<{ users: AdminUser[] }>('/api/v1/users'), [], null);
  const empty = { username: '', password: '', organization: '', displayName: '' };
  const [form, setForm] = useState(empty);
  const [roles, setRoles] = useState<Role[]>(['vendor']);
  const [feedback, setFeedback] = useState<Feedback>(null);
  const set = (key: keyof typeof empty) => (e: { target: { value: string } }) =>
    setForm({ ...form, [key]: e.target.value });
  const organisations = [
    ...new Set((users.data?.users ?? []).map((u) => u.organization).filter((o) => o !== null)),
  ].sort();

  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await api.post('/api/v1/users', {
        username: form.username,
        password: form.password,
        roles,
        ...(form.organization === '' ? {} : { organization: form.organization }),
        ...(form.displayName === '' ? {} : { displayName: form.displayName }),
      });
      setFeedback({ ok: true, text: `User ${form.username} created.` });
      setForm(empty);
      users.reload();
    } catch (err) {
      setFeedback({ ok: false, text: describeError(err) });
    }
  };

  return (
    <section>
      <h2>Users and organisations</h2>
      {users.error !== null && <p className="error">{users.error}</p>}
      <p className="muted">
        Organisations: {organisations.length === 0 ? 'none yet' : organisations.join(' · ')}
      </p>
      <table>
        <thead>
          <tr>
            <th>User</th>
            <th>Organisation</th>
            <th>Roles</th>
            <th>Two-factor</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {users.data?.users.map((u) => (
            <tr key={u.id} data-testid="user-row">
              <td>
                {u.username}
                {u.displayName !== null && <span className="muted"> ({u.displayName})</span>}
              </td>
              <td>{u.organization ?? '—'}</td>
              <td>{u.roles.join(', ')}</td>
              <td>{u.totpEnabled ? 'enrolled' : 'not enrolled'}</td>
              <td>{u.disabled ? 'disabled' : 'active'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="form card" onSubmit={(e) => void create(e)} aria-label="New user">
        <h3>New user</h3>
        <div className="row">
          <label>
            Username
            <input value={form.username} onChange={set('username')} required autoComplete="off" />
          </label>
          <label>
            Initial password
            <input
              type="password"
              value={form.password}
              onChange={set('password')}
              required
              autoComplete="new-password"
            />
          </label>
        </div>
        <div className="row">
          <label>
            Organisation
            <input value={form.organization} onChange={set('organization')} list="organisations" />
            <datalist id="organisations">
              {organisations.map((o) => (
                <option key={o} value={o} />
              ))}
            </datalist>
          </label>
          <label>
            Display name
            <input value={form.displayName} onChange={set('displayName')} />
          </label>
        </div>
        <fieldset>
          <legend>Roles</legend>
          {ROLES.map((r) => (
            <label key={r} className="check">
              <input
                type="checkbox"
                checked={roles.includes(r)}
                onChange={() => setRoles(toggle(roles, r))}
              />
              {r}
            </label>
          ))}
        </fieldset>
        <FeedbackLine feedback={feedback} />
        <button type="submit" disabled={roles.length === 0}>
          Create user
        </button>
      </form>
    </section>
  );
}
