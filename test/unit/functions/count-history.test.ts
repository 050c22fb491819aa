/**
 * The hour-of-counts item and the history answer built from it: attribute
 * names, parsing with malformed entries counted and skipped, minutes across
 * an hour boundary, the window's bounds.
 */
import { describe, expect, it } from 'vitest';
import { countsAttribute, countsOfItem, countsValue } from '../../../contract/minute-counts.js';
import { countsKey } from '../../../contract/table-keys.js';
import {
  historyHours,
  historyMinutes,
  historyPoints,
} from '../../../functions/query/count-history.js';

const H = 500_000;
const M0 = H * 60;

/** A counts item of hour `hour` holding `minutes` (epoch minute -> [endpoints, ips]). */
function item(hour: number, minutes: Record<number, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...countsKey('web', hour), service: 'web', hour };
  for (const [m, v] of Object.entries(minutes)) out[countsAttribute(Number(m))] = v;
  return out;
}

describe('the hour of counts', () => {
  it('names each minute of the hour by its offset, m00..m59', () => {
    expect(countsAttribute(M0)).toBe('m00');
    expect(countsAttribute(M0 + 7)).toBe('m07');
    expect(countsAttribute(M0 + 59)).toBe('m59');
    expect(countsAttribute(M0 + 60)).toBe('m00');
    expect(countsKey('web', H)).toEqual({ pk: 'C#web', sk: '00500000' });
  });

  it('parses the minutes back oldest first, skipping and counting malformed ones', () => {
    const parsed = countsOfItem(
      {
        ...item(H, { [M0 + 5]: countsValue(12, 4), [M0 + 1]: countsValue(3, 1) }),
        m02: [1, -1],
        m03: [1.5, 1],
        m04: 'x',
        m06: [1, 2, 3],
        m60: [1, 1], // not a minute of an hour: ignored like any other attribute
        ttl: 123,
      },
      H,
    );
    expect(parsed.counts).toEqual([
      { minute: M0 + 1, endpoints: 3, ips: 1 },
      { minute: M0 + 5, endpoints: 12, ips: 4 },
    ]);
    expect(parsed.skipped).toBe(4);
  });
});

describe('the history answer', () => {
  it('asks for the complete minutes before now and the hours that hold them', () => {
    const now = (M0 + 10) * 60_000 + 30_000;
    expect(historyMinutes(now, 60)).toEqual([M0 - 50, M0 + 9]);
    expect(historyHours(M0 - 50, M0 + 9)).toEqual([H - 1, H]);
    expect(historyMinutes(now, 1)).toEqual([M0 + 9, M0 + 9]);
    expect(historyHours(M0 + 9, M0 + 9)).toEqual([H, H]);
  });

  it('answers the minutes of the window held across an hour boundary, each at its minute end', () => {
    const items = [
      item(H - 1, { [M0 - 2]: countsValue(5, 2), [M0 - 1]: countsValue(6, 2), [M0 - 59]: [9, 9] }),
      item(H, { [M0]: countsValue(7, 3), [M0 + 3]: countsValue(0, 0), [M0 + 20]: [1, 1] }),
    ];
    const { points, skipped } = historyPoints(items, M0 - 2, M0 + 10);
    expect(skipped).toBe(0);
    expect(points).toEqual([
      { minute: M0 - 2, endpoints: 5, ips: 2, at: (M0 - 1) * 60_000 },
      { minute: M0 - 1, endpoints: 6, ips: 2, at: M0 * 60_000 },
      { minute: M0, endpoints: 7, ips: 3, at: (M0 + 1) * 60_000 },
      { minute: M0 + 3, endpoints: 0, ips: 0, at: (M0 + 4) * 60_000 },
    ]);
  });

  it('trusts an item only for the hour of its own key', () => {
    const foreign = { ...item(H, { [M0 + 1]: countsValue(1, 1) }), sk: 'not-an-hour' };
    const { points, skipped } = historyPoints([foreign], M0, M0 + 59);
    expect(points).toEqual([]);
    expect(skipped).toBe(1);
  });
});
