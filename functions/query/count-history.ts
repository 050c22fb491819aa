/** The per-minute counts of a service's recent minutes, assembled from its hours of counts. */
import { countsOfItem, type MinuteCounts } from '../../contract/minute-counts.js';
import { hourOf } from '../../contract/table-keys.js';
import type { RawItem } from '../store/block-reader.js';

const MINUTE_MS = 60_000;

/** The `minutes` complete minutes before `now`: epoch minutes [a, b]. */
export function historyMinutes(now: number, minutes: number): [number, number] {
  const b = Math.floor(now / MINUTE_MS) - 1;
  return [b - minutes + 1, b];
}

/** The epoch hours holding minutes [a, b]: the counts items to read. */
export function historyHours(a: number, b: number): [number, number] {
  return [hourOf(a), hourOf(b)];
}

/** One point of a history answer. */
export interface HistoryPoint extends MinuteCounts {
  /** Epoch ms, end of the minute. */
  at: number;
}

/**
 * The points of minutes [a, b] held by `items` (counts items of any hours),
 * oldest first, and the malformed entries skipped. An item is trusted only
 * for its own key's hour, so an entry can never land in another hour.
 */
export function historyPoints(
  items: readonly RawItem[],
  a: number,
  b: number,
): { points: HistoryPoint[]; skipped: number } {
  const byMinute = new Map<number, HistoryPoint>();
  let skipped = 0;
  for (const item of items) {
    const hour = typeof item.sk === 'string' && /^\d{8}$/.test(item.sk) ? Number(item.sk) : NaN;
    if (!Number.isInteger(hour)) {
      skipped++;
      continue;
    }
    const { counts, skipped: bad } = countsOfItem(item, hour);
    skipped += bad;
    for (const c of counts) {
      if (c.minute < a || c.minute > b) continue;
      byMinute.set(c.minute, { ...c, at: (c.minute + 1) * MINUTE_MS });
    }
  }
  const points = [...byMinute.values()].sort((x, y) => x.minute - y.minute);
  return { points, skipped };
}
