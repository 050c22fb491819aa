import { describe, expect, it } from 'vitest';
import { oneAtATime } from '../../../local/local-stack.js';

describe('oneAtATime', () => {
  it('never overlaps two invocations and keeps their order, also after a failure', async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const handler = oneAtATime(async (n: number) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5 - (n % 3)));
      running--;
      order.push(n);
      if (n === 2) throw new Error('boom');
      return n * 10;
    });
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => handler(n)));
    expect(most).toBe(1);
    expect(order).toEqual([1, 2, 3, 4]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect((results[3] as PromiseFulfilledResult<number>).value).toBe(40);
  });
});
