/**
 * One hour of a service's per-minute active counts, kept by the summarize
 * function beside each summary under `countsKey(service, hour)`: one small
 * item per service-hour (under 1 KB), so the last hour of counts is one
 * Query of at most two items instead of 60 summaries of 1-3 KB each.
 * Attribute `mNN` (NN the minute within the hour, 00..59) holds the list
 * `[endpoints, ips]` of that minute's summary. Defined once here: the writer
 * names the attributes with it, the reader parses them back with it.
 */
import { ROLLUP_MINUTES } from './table-keys.js';

/** Largest count an entry may hold: beyond any real service, so a bigger one is refused. */
export const MAX_MINUTE_COUNT = 1_000_000_000;

/** One summarized minute's active counts. */
export interface MinuteCounts {
  /** Epoch minute summarized. */
  minute: number;
  /** Active endpoints (ip:port) in the active window ending at the end of the minute. */
  endpoints: number;
  /** Active distinct IPs in that window. */
  ips: number;
}

const ATTRIBUTE_RE = /^m([0-5][0-9])$/;

/** The attribute of the counts item that holds epoch minute `minute`. */
export function countsAttribute(minute: number): string {
  return `m${String(minute % ROLLUP_MINUTES).padStart(2, '0')}`;
}

/** The stored value of one minute's counts. */
export function countsValue(endpoints: number, ips: number): [number, number] {
  return [endpoints, ips];
}

const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_MINUTE_COUNT;

/**
 * The minutes a counts item of hour `hour` holds, oldest first, and how many
 * of its minute attributes were malformed and skipped (never trusted).
 */
export function countsOfItem(
  item: Record<string, unknown>,
  hour: number,
): { counts: MinuteCounts[]; skipped: number } {
  const counts: MinuteCounts[] = [];
  let skipped = 0;
  for (const [name, value] of Object.entries(item)) {
    const m = ATTRIBUTE_RE.exec(name);
    if (!m) continue;
    if (!Array.isArray(value) || value.length !== 2 || !isCount(value[0]) || !isCount(value[1])) {
      skipped++;
      continue;
    }
    counts.push({
      minute: hour * ROLLUP_MINUTES + Number(m[1]),
      endpoints: value[0],
      ips: value[1],
    });
  }
  counts.sort((a, b) => a.minute - b.minute);
  return { counts, skipped };
}
