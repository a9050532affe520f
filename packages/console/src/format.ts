/** mm:ss (or h:mm:ss) of a time offset in milliseconds. */
export function formatOffset(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(h > 0 ? 2 : 1, '0');
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`;
}

export function formatTime(iso: string | null): string {
  if (iso === null) return '—';
  return new Date(iso).toLocaleString(undefined, {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
}

/** "1 h 05 min left", "42 s left", "ended". */
export function countdown(untilIso: string, now: number): string {
  const left = Math.floor((new Date(untilIso).getTime() - now) / 1000);
  if (left <= 0) return 'ended';
  const h = Math.floor(left / 3600);
  const m = Math.floor((left % 3600) / 60);
  const s = left % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min left`;
  if (m > 0) return `${m} min ${String(s).padStart(2, '0')} s left`;
  return `${s} s left`;
}

export function windowText(r: {
  startsAt: string | null;
  endsAt: string | null;
  durationMinutes: number | null;
}): string {
  if (r.durationMinutes !== null) return `${r.durationMinutes} min from approval`;
  return `${formatTime(r.startsAt)} – ${formatTime(r.endsAt)}`;
}
