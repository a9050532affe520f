import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError } from './api';

/** How often lists refresh themselves (the console's live updates). */
export const REFRESH_MS = 2000;

/**
 * Loads data and keeps it current by polling every REFRESH_MS while the
 * component is shown: approvers see new requests and sessions without
 * reloading. `reload()` refreshes at once (after an action).
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
    return () => window.clearInterval(timer);
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
