import { describe, expect, it } from 'vitest';
import { Float64Pool } from '../../../agent/float64-pool.js';

describe('Float64Pool', () => {
  it('hands back a given array for a request it fits, at most twice as long as asked', () => {
    const pool = new Float64Pool(1_000);
    const a = pool.take(100);
    expect(a.length).toBe(100);
    pool.give(a);
    expect(pool.size).toBe(100);
    // Too long for 40 (over twice), so a new exact one; fits 60.
    const small = pool.take(40);
    expect(small).not.toBe(a);
    expect(small.length).toBe(40);
    expect(pool.take(60)).toBe(a);
    expect(pool.size).toBe(0);
    // Too short: a new one.
    pool.give(a);
    const big = pool.take(101);
    expect(big).not.toBe(a);
    expect(big.length).toBe(101);
  });

  it('keeps no more numbers or arrays than its bounds', () => {
    const pool = new Float64Pool(250, 3);
    pool.give(new Float64Array(100));
    pool.give(new Float64Array(100));
    pool.give(new Float64Array(100)); // 300 > 250: dropped
    expect(pool.size).toBe(200);
    const few = new Float64Pool(1_000, 2);
    for (let i = 0; i < 5; i++) few.give(new Float64Array(10));
    expect(few.size).toBe(20);
    few.give(new Float64Array(0));
    expect(few.size).toBe(20);
  });

  it('never hands out one array twice', () => {
    const pool = new Float64Pool(10_000);
    const arrays: Float64Array[] = Array.from({ length: 8 }, (_, i) => new Float64Array(50 + i));
    for (const a of arrays) pool.give(a);
    const taken = Array.from({ length: 12 }, () => pool.take(50));
    expect(new Set(taken).size).toBe(12);
    expect(taken.filter((a) => arrays.includes(a))).toHaveLength(8);
  });
});
