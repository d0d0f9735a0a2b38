import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, defaultBackoffOptions, jitterInterval } from '../../src/util/backoff.ts';

describe('backoffDelay (exponential, capped, equal jitter)', () => {
  const opts = { baseMs: 100, maxMs: 1_000 };

  it('doubles from base per failure, capped at max, drawn from [d/2, d]', () => {
    expect(backoffDelay(1, { ...opts, random: () => 0 })).toBe(50);
    expect(backoffDelay(1, { ...opts, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(2, { ...opts, random: () => 0 })).toBe(100);
    expect(backoffDelay(3, { ...opts, random: () => 0.999999 })).toBe(400);
    expect(backoffDelay(4, { ...opts, random: () => 0.5 })).toBe(600);
    expect(backoffDelay(5, { ...opts, random: () => 0.999999 })).toBe(1_000);
    expect(backoffDelay(50, { ...opts, random: () => 0 })).toBe(500);
    expect(backoffDelay(50, { ...opts, random: () => 0.999999 })).toBe(1_000);
  });

  it('is not full jitter: never below half the step, whatever the random source says', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 2_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (failures, r) => {
          const step = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
          const delay = backoffDelay(failures, { ...opts, random: () => r });
          return Number.isInteger(delay) && delay >= step / 2 && delay <= step;
        },
      ),
    );
  });

  it('counts a failure number below 1 as the first and survives huge ones (exponent capped)', () => {
    expect(backoffDelay(0, { ...opts, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(-3, { ...opts, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, { ...opts, random: () => 0 })).toBe(500);
  });

  it('defaults to 1 s doubling to a 5 min cap and Math.random', () => {
    expect(defaultBackoffOptions).toEqual({ baseMs: 1_000, maxMs: 300_000 });
    for (let i = 0; i < 100; i++) {
      const first = backoffDelay(1);
      expect(first).toBeGreaterThanOrEqual(500);
      expect(first).toBeLessThanOrEqual(1_000);
    }
  });
});

describe('jitterInterval', () => {
  it('jitters an interval uniformly within ±fraction, never below 1 ms', () => {
    expect(jitterInterval(1_000, 0.1, () => 0)).toBe(900);
    expect(jitterInterval(1_000, 0.1, () => 0.5)).toBe(1_000);
    expect(jitterInterval(1_000, 0.1, () => 0.999999)).toBe(1_100);
    expect(jitterInterval(1, 0.9, () => 0)).toBe(1);
  });
});
