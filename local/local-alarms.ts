/**
 * Client-count alarms in local mode: the same per-service bounds the CDK app
 * takes as `serviceAlarms` context, evaluated like CloudWatch evaluates them
 * (M of the last N periods breaching), so thresholds can be tried before
 * deploying. Pure: the caller feeds one count per service per period.
 */
import type { AlarmEntry, AlarmStateName } from '../contract/api-schemas.js';
import { clientAlarmName, METRICS } from '../contract/resources.js';
import type { AlarmReading, AlarmSource } from '../functions/query/alarm-source.js';
import { alarmsInOrder } from '../functions/query/alarm-source.js';

/** Prefix of local mode's alarm names, in the place of a deployed stack's name. */
export const LOCAL_ALARM_PREFIX = 'udpwatch-local';

/** One service's bounds, as in the CDK context `serviceAlarms`. */
export interface LocalAlarmBounds {
  min?: number;
  max?: number;
  minIps?: number;
  maxIps?: number;
  evaluationPeriods?: number;
  datapointsToAlarm?: number;
  treatMissingData?: 'breaching' | 'notBreaching' | 'ignore' | 'missing';
}

/** The alarm state names CloudWatch uses. */
export type AlarmState = AlarmStateName;

/** A change of one alarm's state, with the reading that caused it. */
export interface AlarmTransition {
  service: string;
  metric: string;
  bound: 'min' | 'max';
  threshold: number;
  from: AlarmState;
  to: AlarmState;
  value: number | undefined;
  at: number;
}

/** Active counts of one service in one period; undefined when nothing answered. */
export interface ServiceCounts {
  endpoints: number;
  ips: number;
}

interface AlarmSlot {
  service: string;
  metric: string;
  bound: 'min' | 'max';
  threshold: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  treatMissingData: NonNullable<LocalAlarmBounds['treatMissingData']>;
  /** Recent periods: true breaching, false not, null missing. */
  window: (boolean | null)[];
  state: AlarmState;
  /** The latest period's reading (undefined: no data), and when the state last changed. */
  lastValue: number | undefined;
  changedAt: number | null;
  evaluations: number;
}

/** Evaluates every configured alarm once per period and reports state changes. */
export class LocalAlarms {
  private readonly slots: AlarmSlot[] = [];

  constructor(
    config: Record<string, LocalAlarmBounds>,
    defaults: { evaluationPeriods: number; datapointsToAlarm?: number } = { evaluationPeriods: 5 },
  ) {
    for (const [service, b] of Object.entries(config)) {
      const evaluationPeriods = b.evaluationPeriods ?? defaults.evaluationPeriods;
      const datapointsToAlarm = Math.min(
        b.datapointsToAlarm ?? defaults.datapointsToAlarm ?? evaluationPeriods,
        evaluationPeriods,
      );
      const add = (metric: string, bound: 'min' | 'max', threshold: number | undefined) => {
        if (threshold === undefined) return;
        this.slots.push({
          service,
          metric,
          bound,
          threshold,
          evaluationPeriods,
          datapointsToAlarm,
          // No data for a minimum means no clients: that is the breach a minimum watches for.
          treatMissingData: b.treatMissingData ?? (bound === 'min' ? 'breaching' : 'notBreaching'),
          window: [],
          state: 'INSUFFICIENT_DATA',
          lastValue: undefined,
          changedAt: null,
          evaluations: 0,
        });
      };
      add(METRICS.activeClients, 'min', b.min);
      add(METRICS.activeClients, 'max', b.max);
      add(METRICS.activeClientIps, 'min', b.minIps);
      add(METRICS.activeClientIps, 'max', b.maxIps);
    }
  }

  /** Services that have at least one alarm. */
  services(): string[] {
    return [...new Set(this.slots.map((s) => s.service))];
  }

  /** Current state of every alarm. */
  states(): { service: string; metric: string; bound: 'min' | 'max'; state: AlarmState }[] {
    return this.slots.map(({ service, metric, bound, state }) => ({
      service,
      metric,
      bound,
      state,
    }));
  }

  /** Feeds one period's counts (a missing service = no data) and returns the transitions. */
  evaluate(counts: ReadonlyMap<string, ServiceCounts>, at: number): AlarmTransition[] {
    const out: AlarmTransition[] = [];
    for (const slot of this.slots) {
      const c = counts.get(slot.service);
      const value =
        c === undefined ? undefined : slot.metric === METRICS.activeClients ? c.endpoints : c.ips;
      slot.evaluations++;
      slot.lastValue = value;
      let point: boolean | null;
      if (value === undefined) {
        if (slot.treatMissingData === 'ignore') continue;
        point =
          slot.treatMissingData === 'breaching'
            ? true
            : slot.treatMissingData === 'notBreaching'
              ? false
              : null;
      } else {
        point = slot.bound === 'min' ? value < slot.threshold : value > slot.threshold;
      }
      slot.window.push(point);
      if (slot.window.length > slot.evaluationPeriods) slot.window.shift();
      const known = slot.window.filter((p) => p !== null);
      const breaching = known.filter((p) => p).length;
      const next: AlarmState =
        breaching >= slot.datapointsToAlarm
          ? 'ALARM'
          : known.length === 0
            ? 'INSUFFICIENT_DATA'
            : 'OK';
      if (next !== slot.state) {
        out.push({
          service: slot.service,
          metric: slot.metric,
          bound: slot.bound,
          threshold: slot.threshold,
          from: slot.state,
          to: next,
          value,
          at,
        });
        slot.state = next;
        slot.changedAt = at;
      }
    }
    return out;
  }

  /** Every alarm as GET /v1/alarms answers it, with local-mode names in the deployed form. */
  entries(): AlarmEntry[] {
    return alarmsInOrder(
      this.slots.map((slot) => ({
        name: clientAlarmName(
          LOCAL_ALARM_PREFIX,
          slot.service,
          slot.metric,
          slot.bound === 'min',
          slot.threshold,
        ),
        service: slot.service,
        metric: slot.metric,
        bound: slot.bound,
        threshold: slot.threshold,
        state: slot.state,
        reason: reasonOf(slot),
        changedAt: slot.changedAt,
      })),
    );
  }
}

/** The alarm's account of its state, in the manner of CloudWatch's StateReason. */
function reasonOf(slot: AlarmSlot): string {
  if (slot.evaluations === 0) return 'not evaluated yet';
  const breaching = slot.window.filter((p) => p === true).length;
  const reading = slot.lastValue === undefined ? 'no data' : `${slot.metric} = ${slot.lastValue}`;
  return `${breaching} of the last ${slot.window.length} periods breached (${slot.datapointsToAlarm} of ${slot.evaluationPeriods} raise the alarm); latest: ${reading}, ${slot.bound} ${slot.threshold}`;
}

/** The query handler's alarm port backed by local mode's alarms (none configured: an empty list). */
export function localAlarmSource(
  alarms: LocalAlarms | undefined,
  now: () => number = Date.now,
): AlarmSource {
  return {
    read: async (): Promise<AlarmReading> => ({
      source: alarms ? 'local' : 'none',
      readAt: now(),
      alarms: alarms ? alarms.entries() : [],
      truncated: false,
    }),
  };
}

/** One line for the terminal, e.g. `ALARM  dns ActiveClients = 3 (min 10)`. */
export function describeTransition(t: AlarmTransition): string {
  const reading = t.value === undefined ? 'no data' : `= ${t.value}`;
  return `${t.to.padEnd(5)}  ${t.service} ${t.metric} ${reading} (${t.bound} ${t.threshold}; was ${t.from})`;
}
