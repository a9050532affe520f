/** Small pieces of markup that several pages share. */
import type { Session, Zone } from './api';
import { formatTime } from './format';

/** The outcome of a form: a success to announce, or an error to alert. */
export type Feedback = { ok: boolean; text: string } | null;

export function FeedbackLine({ feedback }: { feedback: Feedback }) {
  if (feedback === null) return null;
  return (
    <p className={feedback.ok ? 'success' : 'error'} role={feedback.ok ? 'status' : 'alert'}>
      {feedback.text}
    </p>
  );
}

/** A form's error, announced to assistive technology. */
export function ErrorAlert({ error }: { error: string | null }) {
  if (error === null) return null;
  return (
    <p className="error" role="alert">
      {error}
    </p>
  );
}

/** The six- to eight-digit code of an authenticator app. */
export function OneTimeCodeInput({
  value,
  onChange,
  required = false,
}: {
  value: string;
  onChange: (code: string) => void;
  required?: boolean;
}) {
  return (
    <input
      name="totp"
      inputMode="numeric"
      autoComplete="one-time-code"
      pattern="[0-9]{6,8}"
      value={value}
      onChange={(e) => onChange(e.target.value.trim())}
      required={required}
    />
  );
}

/** One <option> a zone, for a <select> whose first option the caller writes. */
export function ZoneOptions({ zones }: { zones: Zone[] | undefined }) {
  return (
    <>
      {zones?.map((z) => (
        <option key={z.id} value={z.id}>
          {z.name}
        </option>
      ))}
    </>
  );
}

/** The Vendor, Asset, Via and start cells of a session's table row. */
export function SessionCells({ session: s }: { session: Session }) {
  return (
    <>
      <td>
        {s.user.username}
        {s.user.organization !== null && <span className="muted"> ({s.user.organization})</span>}
      </td>
      <td>{s.asset.name}</td>
      <td>
        {s.protocol === 'web' ? 'browser' : 'SSH'} from {s.clientAddress ?? '?'}
      </td>
      <td>{formatTime(s.startedAt)}</td>
    </>
  );
}

/** A checkbox group's new selection after `value` was ticked or unticked. */
export function toggle<T>(list: T[], value: T): T[] {
  return list.includes(value) ? list.filter((v) => v !== value) : [...list, value];
}
