import { describe, expect, it } from 'vitest';
import { retryDelayMs } from './index.js';

describe('retryDelayMs', () => {
  const middle = (): number => 0.5;

  it('starts at 5 s and doubles with every attempt', () => {
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, middle))).toEqual([
      5_000, 10_000, 20_000, 40_000,
    ]);
  });

  it('is capped at one hour however many attempts failed', () => {
    expect(retryDelayMs(11, middle)).toBe(3_600_000);
    expect(retryDelayMs(100, middle)).toBe(3_600_000);
    expect(retryDelayMs(10_000, () => 1)).toBe(4_320_000);
  });

  it('spreads retries by ±20%', () => {
    expect(retryDelayMs(1, () => 0)).toBe(4_000);
    expect(retryDelayMs(1, () => 1)).toBe(6_000);
    const samples = Array.from({ length: 200 }, () => retryDelayMs(3));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(16_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(24_000);
    expect(new Set(samples).size).toBeGreaterThan(1);
  });
});
