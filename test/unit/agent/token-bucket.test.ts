import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../agent/token-bucket.js';

describe('TokenBucket', () => {
  it('allows a burst, then one token per refill period, never more than the burst', () => {
    const b = new TokenBucket(2, 30_000, 0);
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([true, true, false]);
    expect(b.take(29_999)).toBe(false);
    expect(b.take(30_000)).toBe(true);
    expect(b.take(30_001)).toBe(false);
    // A long quiet spell refills to the burst only.
    expect(b.available(10_000_000)).toBe(2);
    expect([b.take(10_000_000), b.take(10_000_000), b.take(10_000_000)]).toEqual([
      true,
      true,
      false,
    ]);
    // A clock going backwards neither adds nor takes tokens.
    expect(b.take(5)).toBe(false);
  });

  it('with a burst of 0 never gives a token', () => {
    const b = new TokenBucket(0, 1000, 0);
    expect(b.take(1_000_000)).toBe(false);
  });
});
