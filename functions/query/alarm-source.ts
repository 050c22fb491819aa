/**
 * Where GET /v1/alarms gets alarm states from: a port the query handler is
 * given (CloudWatch when deployed, local mode's own evaluation locally), so
 * the route does not know which.
 */
import type { AlarmEntry } from '../../contract/api-schemas.js';

/** The alarms and their states, as of `readAt`. */
export interface AlarmReading {
  source: 'cloudwatch' | 'local' | 'none';
  readAt: number;
  alarms: AlarmEntry[];
  /** More alarms than one reading takes: the rest are left out. */
  truncated: boolean;
}

/** Answers the current alarm states. */
export interface AlarmSource {
  read(): Promise<AlarmReading>;
}

/** The source of a query function that has no alarms configured (no prefix, no local alarms). */
export function noAlarms(now: () => number = Date.now): AlarmSource {
  return { read: async () => ({ source: 'none', readAt: now(), alarms: [], truncated: false }) };
}

const STATE_ORDER: Record<AlarmEntry['state'], number> = {
  ALARM: 0,
  INSUFFICIENT_DATA: 1,
  OK: 2,
};

/** Alarms in answer order: ALARM first, then INSUFFICIENT_DATA, then OK; by name within each. */
export function alarmsInOrder(alarms: readonly AlarmEntry[]): AlarmEntry[] {
  return [...alarms].sort(
    (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.name.localeCompare(b.name),
  );
}
