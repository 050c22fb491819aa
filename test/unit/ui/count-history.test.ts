/** The page's hour of counts: stored minutes merged with its own samples, bounded to the hour. */
import { describe, expect, it } from 'vitest';
import { CountHistory } from '../../../ui/page/count-history.js';

const T0 = 1_800_000_000; // epoch seconds

describe('CountHistory', () => {
  it('starts a fresh page from the stored minutes and appends live samples after them', () => {
    const h = new CountHistory();
    expect(h.seeded('dns')).toBe(false);
    h.seed('dns', [
      { at: (T0 - 120) * 1000, endpoints: 4, ips: 2 },
      { at: (T0 - 60) * 1000, endpoints: 5, ips: 2 },
    ]);
    expect(h.seeded('dns')).toBe(true);
    h.add('dns', T0 * 1000, 6, 3);
    expect(h.get('dns')).toEqual({
      t: [T0 - 120, T0 - 60, T0],
      endpoints: [4, 5, 6],
      ips: [2, 2, 3],
    });
  });

  it('merges stored minutes under samples taken before them, a sample winning at the same second', () => {
    const h = new CountHistory();
    h.add('dns', T0 * 1000, 9, 9);
    h.seed('dns', [
      { at: (T0 - 60) * 1000, endpoints: 1, ips: 1 },
      { at: T0 * 1000, endpoints: 2, ips: 2 },
    ]);
    expect(h.get('dns')).toEqual({ t: [T0 - 60, T0], endpoints: [1, 9], ips: [1, 9] });
  });

  it('keeps only the hour up to the newest point', () => {
    const h = new CountHistory();
    h.seed('dns', [
      { at: (T0 - 3700) * 1000, endpoints: 1, ips: 1 },
      { at: (T0 - 3600) * 1000, endpoints: 2, ips: 1 },
      { at: T0 * 1000, endpoints: 3, ips: 1 },
    ]);
    expect(h.get('dns').t).toEqual([T0 - 3600, T0]);
  });
});
