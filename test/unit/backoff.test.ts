import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../src/util/backoff.js';

describe('backoffDelayMs', () => {
  const policy = { initialMs: 500, maxMs: 30_000 };

  it('stays within [0, min(max, initial * 2^(failures-1)))', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (failures, r) => {
          const delay = backoffDelayMs(failures, policy, () => r);
          const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** (failures - 1));
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(ceiling);
          expect(Number.isInteger(delay)).toBe(true);
        },
      ),
    );
  });

  it('doubles the ceiling per attempt up to the cap', () => {
    const almostOne = () => 0.999999;
    expect([1, 2, 3, 4, 7, 8, 51].map((n) => backoffDelayMs(n, policy, almostOne))).toEqual([
      499, 999, 1999, 3999, 29_999, 29_999, 29_999,
    ]);
    expect(backoffDelayMs(6, policy, () => 0)).toBe(0);
    // without jitter: the ceiling itself (the grow failure backoff); none before a failure
    expect([0, 1, 2, 7].map((n) => backoffDelayMs(n, policy))).toEqual([0, 500, 1000, 30_000]);
  });
});
