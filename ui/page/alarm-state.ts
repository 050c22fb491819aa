/**
 * How the page tells alarm states: a word and a symbol for each state, so
 * nothing depends on colour, and one line for a service's alarms.
 */
import type { AlarmEntry, AlarmsResponse } from '../../contract/api-schemas.js';

/** Symbol and word of each state. */
export const STATE_LABEL: Record<AlarmEntry['state'], string> = {
  ALARM: '✖ ALARM',
  INSUFFICIENT_DATA: '? INSUFFICIENT DATA',
  OK: '✓ OK',
};

const RANK: Record<AlarmEntry['state'], number> = { ALARM: 0, INSUFFICIENT_DATA: 1, OK: 2 };

/** What one alarm watches, e.g. `ActiveClients below 10`. */
export function alarmCondition(a: AlarmEntry): string {
  if (a.bound === null || a.threshold === null) return a.metric;
  return `${a.metric} ${a.bound === 'min' ? 'below' : 'above'} ${a.threshold}`;
}

/** The worst state of a set of alarms (ALARM, then INSUFFICIENT_DATA, then OK). */
export function worstState(list: readonly AlarmEntry[]): AlarmEntry['state'] | undefined {
  let worst: AlarmEntry['state'] | undefined;
  for (const a of list) if (worst === undefined || RANK[a.state] < RANK[worst]) worst = a.state;
  return worst;
}

/**
 * One line for a service's alarms, e.g. `Alarms: ✖ ALARM — ActiveClients below 10 (1 of 2 in ALARM)`;
 * undefined when it has none.
 */
export function serviceAlarmLine(list: readonly AlarmEntry[]): string | undefined {
  const worst = worstState(list);
  if (worst === undefined) return undefined;
  const inWorst = list.filter((a) => a.state === worst);
  const what = inWorst.map(alarmCondition).join(', ');
  const share =
    list.length > 1
      ? ` (${inWorst.length} of ${list.length} ${worst === 'OK' ? 'OK' : `in ${STATE_LABEL[worst].slice(2)}`})`
      : '';
  return `Alarms: ${STATE_LABEL[worst]} — ${what}${share}`;
}

/** The line under the services heading: where states come from and what is firing. */
export function alarmsNote(answer: AlarmsResponse): string {
  if (answer.source === 'none')
    return 'Alarms: none configured (serviceAlarms context when deploying, npm start -- --alarms locally).';
  const firing = answer.alarms.filter((a) => a.state === 'ALARM');
  const from = answer.source === 'cloudwatch' ? 'CloudWatch' : 'local mode';
  const operations = firing.filter((a) => a.service === null).map((a) => a.name);
  return (
    `Alarms (${from}): ${answer.alarms.length} configured, ${firing.length} in ALARM` +
    (operations.length > 0 ? `; operations alarms in ALARM: ${operations.join(', ')}` : '') +
    (answer.truncated ? '; more alarms than one answer lists, the rest not shown' : '') +
    '.'
  );
}
