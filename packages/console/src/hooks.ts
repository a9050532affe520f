import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError } from './api';

/**
 * Lists refresh when the broker says something changed (Server-Sent Events
 * from /api/v1/changes, within about a second), and at least this often in
 * case the stream is down.
 */
export const REFRESH_MS = 30_000;

type Listener = () => void;
const listeners = new Set<Listener>();
let changes: EventSource | null = null;

/** One stream for the whole page, open while any list is shown. */
function onChange(listener: Listener): () => void {
  listeners.add(listener);
  if (changes === null) {
    changes = new EventSource('/api/v1/changes');
    const notify = (): void => listeners.forEach((l) => l());
    changes.addEventListener('changed', notify);
    // (Re)connected: whatever changed while the stream was not there is loaded now.
    changes.addEventListener('ready', notify);
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) {
      changes?.close();
      changes = null;
    }
  };
}

/**
 * Loads data and keeps it current while the component is shown (pushed
 * changes, and a poll every REFRESH_MS): approvers see new requests and
 * sessions without reloading. `reload()` refreshes at once (after an action).
 */
export function useLive<T>(
  load: () => Promise<T>,
  deps: readonly unknown[],
  intervalMs: number | null = REFRESH_MS,
): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loadRef = useRef(load);
  loadRef.current = load;
  const run = useCallback(() => {
    loadRef.current().then(
      (value) => {
        setData(value);
        setError(null);
      },
      (err: unknown) => setError(describeError(err)),
    );
  }, []);
  useEffect(() => {
    run();
    if (intervalMs === null) return;
    const timer = window.setInterval(run, intervalMs);
    const unsubscribe = onChange(run);
    return () => {
      window.clearInterval(timer);
      unsubscribe();
    };
    // `deps` decide when to start over.
  }, [run, intervalMs, ...deps]);
  return { data, error, reload: run };
}

/** The current time, ticking every second (countdowns). */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);
  return now;
}
