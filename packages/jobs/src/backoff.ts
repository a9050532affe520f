const BASE_DELAY_MS = 5_000;
const MAX_DELAY_MS = 60 * 60_000;
const JITTER = 0.2;

/**
 * How long to wait before retrying after failed attempt number `attempt`
 * (1-based): 5 s doubling per attempt, capped at one hour, ±20% jitter so that
 * jobs failing together (an endpoint down) do not retry in lockstep.
 */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  // 2^10 × 5 s already exceeds the cap; clamping the exponent avoids Infinity.
  const base = Math.min(BASE_DELAY_MS * 2 ** Math.min(exponent, 20), MAX_DELAY_MS);
  const factor = 1 - JITTER + 2 * JITTER * random();
  return Math.round(base * factor);
}
