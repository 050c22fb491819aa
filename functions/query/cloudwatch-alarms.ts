/**
 * The stack's CloudWatch alarms as GET /v1/alarms answers them: DescribeAlarms
 * by the stack's name prefix, shaped into answer entries, cached per function
 * instance so page refreshes do not multiply CloudWatch calls.
 */
import {
  type CloudWatchClient,
  DescribeAlarmsCommand,
  type MetricAlarm,
} from '@aws-sdk/client-cloudwatch';
import { type AlarmEntry, AlarmStateName } from '../../contract/api-schemas.js';
import { METRICS } from '../../contract/resources.js';
import { type AlarmReading, type AlarmSource, alarmsInOrder } from './alarm-source.js';

/** How long one reading is reused: alarms are evaluated once a minute at best. */
export const ALARM_CACHE_MS = 30_000;
/** Pages of 100 alarms one reading follows at most (a stack has a few dozen). */
export const MAX_ALARM_PAGES = 10;

const BOUND_OF: Record<string, AlarmEntry['bound']> = {
  LessThanThreshold: 'min',
  LessThanOrEqualToThreshold: 'min',
  LessThanLowerThreshold: 'min',
  GreaterThanThreshold: 'max',
  GreaterThanOrEqualToThreshold: 'max',
  GreaterThanUpperThreshold: 'max',
};

/** The metric an alarm watches, and the service dimension on it, if any. */
function watched(alarm: MetricAlarm): { metric: string; service: string | null } {
  const serviceOf = (dims: { Name?: string; Value?: string }[] | undefined) =>
    dims?.find((d) => d.Name === METRICS.serviceDimension)?.Value ?? null;
  if (alarm.MetricName) {
    return { metric: alarm.MetricName, service: serviceOf(alarm.Dimensions) };
  }
  // Metric math: the expression that returns data, and the service of any metric in it.
  const queries = alarm.Metrics ?? [];
  const returned = queries.find((q) => q.ReturnData !== false) ?? queries[0];
  const service =
    queries.map((q) => serviceOf(q.MetricStat?.Metric?.Dimensions)).find((s) => s !== null) ?? null;
  const metric =
    returned?.MetricStat?.Metric?.MetricName ?? returned?.Expression ?? returned?.Label ?? '';
  return { metric, service };
}

/** One CloudWatch metric alarm as an answer entry; null without a name or a known state. */
export function alarmEntryOf(alarm: MetricAlarm): AlarmEntry | null {
  const state = AlarmStateName.safeParse(alarm.StateValue);
  if (!alarm.AlarmName || !state.success) return null;
  const { metric, service } = watched(alarm);
  const changed = alarm.StateTransitionedTimestamp ?? alarm.StateUpdatedTimestamp;
  return {
    name: alarm.AlarmName,
    service,
    metric,
    bound: BOUND_OF[alarm.ComparisonOperator ?? ''] ?? null,
    threshold: typeof alarm.Threshold === 'number' ? alarm.Threshold : null,
    state: state.data,
    reason: alarm.StateReason ?? '',
    changedAt: changed ? changed.getTime() : null,
  };
}

/** Settings of the CloudWatch alarm source. */
export interface CloudWatchAlarmsOptions {
  client: Pick<CloudWatchClient, 'send'>;
  /** Alarm name prefix of the stack (`<stack name>-`). */
  prefix: string;
  cacheMs?: number;
  now?: () => number;
}

/**
 * Reads the stack's metric alarms, at most once per `cacheMs` per instance;
 * concurrent requests share one reading, and a failed reading is not kept.
 */
export function cloudWatchAlarms(options: CloudWatchAlarmsOptions): AlarmSource {
  const now = options.now ?? Date.now;
  const cacheMs = options.cacheMs ?? ALARM_CACHE_MS;
  let cached: { at: number; reading: Promise<AlarmReading> } | undefined;
  const readAll = async (): Promise<AlarmReading> => {
    const readAt = now();
    const alarms: AlarmEntry[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_ALARM_PAGES; page++) {
      const out = await options.client.send(
        new DescribeAlarmsCommand({
          AlarmNamePrefix: options.prefix,
          AlarmTypes: ['MetricAlarm'],
          MaxRecords: 100,
          NextToken: token,
        }),
      );
      for (const a of out.MetricAlarms ?? []) {
        const entry = alarmEntryOf(a);
        if (entry) alarms.push(entry);
      }
      token = out.NextToken;
      if (!token) break;
    }
    // Pages left over are said, not dropped in silence.
    return { source: 'cloudwatch', readAt, alarms: alarmsInOrder(alarms), truncated: !!token };
  };
  return {
    read() {
      const t = now();
      if (cached && t - cached.at < cacheMs) return cached.reading;
      const reading = readAll();
      const entry = { at: t, reading };
      cached = entry;
      reading.catch(() => {
        if (cached === entry) cached = undefined;
      });
      return reading;
    },
  };
}
