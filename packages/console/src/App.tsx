import QRCode from 'qrcode';
import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, describeError, type Role, type User } from './api';
import { ErrorAlert, OneTimeCodeInput } from './components';
import { AdminAssets, AdminConnectors, AdminUsers, AdminZones } from './pages/admin';
import { ApproverQueue, LiveSessions, WatchPage } from './pages/approver';
import { AuditTrail, CommandSearch, ReplayPage, SessionList } from './pages/auditor';
import { ConnectPage, MyGrants, MyRequests, RequestAccess, SshKeys } from './pages/vendor';

interface Me {
  user: User;
  totpEnrollmentRequired: boolean;
}

/** Routes live in the URL fragment (`#/approvals`), so the broker serves one page. */
function useRoute(): string[] {
  const read = (): string[] =>
    window.location.hash
      .replace(/^#\/?/, '')
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = (): void => setRoute(read());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

interface NavItem {
  path: string;
  label: string;
  roles: Role[];
}

const NAV: NavItem[] = [
  { path: 'request', label: 'Request access', roles: ['vendor'] },
  { path: 'my-requests', label: 'My requests', roles: ['vendor'] },
  { path: 'grants', label: 'My access', roles: ['vendor'] },
  { path: 'keys', label: 'SSH keys', roles: ['vendor'] },
  { path: 'approvals', label: 'Approvals', roles: ['approver'] },
  { path: 'live', label: 'Live sessions', roles: ['approver', 'admin'] },
  { path: 'sessions', label: 'Sessions', roles: ['auditor', 'admin', 'approver'] },
  { path: 'commands', label: 'Command search', roles: ['auditor', 'admin', 'approver'] },
  { path: 'audit', label: 'Audit trail', roles: ['auditor', 'admin'] },
  { path: 'zones', label: 'Zones', roles: ['admin'] },
  { path: 'assets', label: 'Assets', roles: ['admin'] },
  { path: 'connectors', label: 'Connectors', roles: ['admin'] },
  { path: 'users', label: 'Users', roles: ['admin'] },
];

export function App() {
  const [me, setMe] = useState<Me | null | 'loading'>('loading');
  const route = useRoute();

  const refreshMe = (): void => {
    api.get<Me>('/api/v1/me').then(setMe, () => setMe(null));
  };
  useEffect(refreshMe, []);

  // Access tokens are short-lived; the cookie is renewed while the console is open.
  useEffect(() => {
    if (me === null || me === 'loading') return;
    const timer = window.setInterval(() => {
      api.post('/api/v1/auth/refresh').catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 401) setMe(null);
      });
    }, 4 * 60_000);
    return () => window.clearInterval(timer);
  }, [me]);

  if (me === 'loading') return <p className="status">Loading…</p>;
  if (me === null) return <SignIn onSignedIn={refreshMe} />;
  if (me.totpEnrollmentRequired) return <TotpEnrolment user={me.user} onDone={refreshMe} />;

  const user = me.user;
  const items = NAV.filter((n) => n.roles.some((r) => user.roles.includes(r)));
  const current = route[0] ?? items[0]?.path ?? '';

  const signOut = (): void => {
    void api.post('/api/v1/auth/logout').finally(() => setMe(null));
  };

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">Airlock</span>
        <nav aria-label="Main">
          {items.map((n) => (
            <a
              key={n.path}
              href={`#/${n.path}`}
              aria-current={current === n.path ? 'page' : undefined}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <span className="who" data-testid="signed-in-as">
          {user.displayName ?? user.username} · {user.roles.join(', ')}
        </span>
        <button type="button" className="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        <Page route={route} current={current} user={user} />
      </main>
    </div>
  );
}

function Page({ route, current, user }: { route: string[]; current: string; user: User }) {
  const arg = route[1] ?? '';
  switch (current) {
    case 'request':
      return <RequestAccess />;
    case 'my-requests':
      return <MyRequests />;
    case 'grants':
      return <MyGrants user={user} />;
    case 'connect':
      return <ConnectPage assetId={arg} user={user} />;
    case 'keys':
      return <SshKeys />;
    case 'approvals':
      return <ApproverQueue user={user} />;
    case 'live':
      return <LiveSessions />;
    case 'watch':
      return <WatchPage sessionId={arg} />;
    case 'sessions':
      return <SessionList />;
    case 'replay':
      return <ReplayPage sessionId={arg} />;
    case 'commands':
      return <CommandSearch />;
    case 'audit':
      return <AuditTrail />;
    case 'zones':
      return <AdminZones />;
    case 'assets':
      return <AdminAssets />;
    case 'connectors':
      return <AdminConnectors />;
    case 'users':
      return <AdminUsers />;
    default:
      return <p className="muted">Nothing here for your roles.</p>;
  }
}

/** Sign-in errors in plain words; the codes come from the broker's catalogue. */
function signInMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'auth.invalid_credentials')
      return 'The username, password or one-time code is not right. Check them and try again; after several failed attempts the account is locked for a while.';
    if (err.code === 'auth.locked') return err.message;
    if (err.code === 'auth.totp_required')
      return 'Enter the six-digit code from your authenticator app as well.';
  }
  return describeError(err);
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.post('/api/v1/auth/login', {
        username,
        password,
        ...(totp === '' ? {} : { totp }),
      });
      onSignedIn();
    } catch (err) {
      setError(signInMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to Airlock</h1>
        <label>
          Username
          <input
            name="username"
            autoComplete="username"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            required
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        <label>
          One-time code <span className="muted">(if you have enrolled an authenticator)</span>
          <OneTimeCodeInput value={totp} onChange={setTotp} />
        </label>
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function TotpEnrolment({ user, onDone }: { user: User; onDone: () => void }) {
  const [secret, setSecret] = useState<{ secret: string; qr: string } | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api
      .post<{ secret: string; otpauthUri: string }>('/api/v1/me/totp')
      .then(async (s) => setSecret({ secret: s.secret, qr: await QRCode.toDataURL(s.otpauthUri) }))
      .catch((err: unknown) => setError(describeError(err)));
  }, []);

  const confirm = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await api.post('/api/v1/me/totp/confirm', { code });
      onDone();
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === 'totp.invalid_code'
          ? 'That code is not valid. Check the time on your phone and enter the code currently shown.'
          : describeError(err),
      );
    }
  };

  return (
    <main className="signin">
      <form className="card" onSubmit={(e) => void confirm(e)} aria-labelledby="totp-title">
        <h1 id="totp-title">Set up two-factor sign-in</h1>
        <p>
          Your role ({user.roles.join(', ')}) needs a second factor. Scan this code with an
          authenticator app, then enter the six-digit code it shows.
        </p>
        {secret !== null && (
          <>
            <img
              src={secret.qr}
              alt="QR code for your authenticator app"
              width={200}
              height={200}
            />
            <p>
              Or type the key: <code data-testid="totp-secret">{secret.secret}</code>
            </p>
          </>
        )}
        <label>
          Code from the app
          <input
            name="code"
            inputMode="numeric"
            pattern="[0-9]{6}"
            value={code}
            onChange={(e) => setCode(e.target.value.trim())}
            required
          />
        </label>
        <ErrorAlert error={error} />
        <button type="submit">Confirm</button>
      </form>
    </main>
  );
}
