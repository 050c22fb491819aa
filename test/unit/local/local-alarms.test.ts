import { describe, expect, it } from 'vitest';
import {
  describeTransition,
  LocalAlarms,
  localAlarmSource,
  type ServiceCounts,
} from '../../../local/local-alarms.js';

const counts = (entries: Record<string, ServiceCounts>) => new Map(Object.entries(entries));

describe('LocalAlarms', () => {
  it('fires a minimum alarm after M of N breaching periods and clears it', () => {
    const alarms = new LocalAlarms({
      dns: { min: 10, evaluationPeriods: 3, datapointsToAlarm: 2 },
    });
    expect(alarms.evaluate(counts({ dns: { endpoints: 12, ips: 5 } }), 1)).toEqual([
      expect.objectContaining({ from: 'INSUFFICIENT_DATA', to: 'OK', value: 12 }),
    ]);
    expect(alarms.evaluate(counts({ dns: { endpoints: 3, ips: 2 } }), 2)).toEqual([]);
    const fired = alarms.evaluate(counts({ dns: { endpoints: 4, ips: 2 } }), 3);
    expect(fired).toEqual([
      expect.objectContaining({
        service: 'dns',
        metric: 'ActiveClients',
        bound: 'min',
        to: 'ALARM',
        value: 4,
      }),
    ]);
    expect(describeTransition(fired[0]!)).toBe('ALARM  dns ActiveClients = 4 (min 10; was OK)');
    // One good period leaves two breaching in the window of three: still in alarm.
    expect(alarms.evaluate(counts({ dns: { endpoints: 20, ips: 9 } }), 4)).toEqual([]);
    expect(alarms.evaluate(counts({ dns: { endpoints: 20, ips: 9 } }), 5)).toEqual([
      expect.objectContaining({ from: 'ALARM', to: 'OK' }),
    ]);
  });

  it('watches distinct IPs separately from endpoints', () => {
    const alarms = new LocalAlarms({ web: { max: 100, maxIps: 2, evaluationPeriods: 1 } });
    const t = alarms.evaluate(counts({ web: { endpoints: 50, ips: 3 } }), 1);
    expect(t.map((x) => `${x.metric}:${x.to}`).sort()).toEqual([
      'ActiveClientIPs:ALARM',
      'ActiveClients:OK',
    ]);
  });

  it('treats no data as breaching a minimum and not breaching a maximum by default', () => {
    const alarms = new LocalAlarms({ dns: { min: 1, max: 5, evaluationPeriods: 1 } });
    const t = alarms.evaluate(new Map(), 1);
    expect(t).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ bound: 'min', to: 'ALARM', value: undefined }),
        expect.objectContaining({ bound: 'max', to: 'OK' }),
      ]),
    );
    expect(alarms.services()).toEqual(['dns']);
  });

  it('ignores missing data when told to', () => {
    const alarms = new LocalAlarms({
      dns: { min: 1, evaluationPeriods: 1, treatMissingData: 'ignore' },
    });
    expect(alarms.evaluate(new Map(), 1)).toEqual([]);
    expect(alarms.states()[0]!.state).toBe('INSUFFICIENT_DATA');
  });
});

describe('LocalAlarms as GET /v1/alarms answers them', () => {
  it('lists each bound with its deployed-form name, state, reason and last change, ALARM first', async () => {
    const alarms = new LocalAlarms({ dns: { min: 10, maxIps: 3, evaluationPeriods: 1 } });
    const before = alarms.entries();
    expect(before.map((a) => [a.name, a.state, a.reason, a.changedAt])).toEqual([
      [
        'udpwatch-local-dns-ActiveClientIPs-above-3',
        'INSUFFICIENT_DATA',
        'not evaluated yet',
        null,
      ],
      ['udpwatch-local-dns-ActiveClients-below-10', 'INSUFFICIENT_DATA', 'not evaluated yet', null],
    ]);
    alarms.evaluate(counts({ dns: { endpoints: 4, ips: 2 } }), 5000);
    const source = localAlarmSource(alarms, () => 6000);
    const reading = await source.read();
    expect(reading).toMatchObject({ source: 'local', readAt: 6000 });
    expect(reading.alarms).toEqual([
      {
        name: 'udpwatch-local-dns-ActiveClients-below-10',
        service: 'dns',
        metric: 'ActiveClients',
        bound: 'min',
        threshold: 10,
        state: 'ALARM',
        reason:
          '1 of the last 1 periods breached (1 of 1 raise the alarm); latest: ActiveClients = 4, min 10',
        changedAt: 5000,
      },
      expect.objectContaining({
        name: 'udpwatch-local-dns-ActiveClientIPs-above-3',
        state: 'OK',
        bound: 'max',
        changedAt: 5000,
      }),
    ]);
    // A period without an answer is no data: a minimum breaches, and says so.
    alarms.evaluate(counts({}), 7000);
    expect(alarms.entries()[0]!.reason).toBe(
      '1 of the last 1 periods breached (1 of 1 raise the alarm); latest: no data, min 10',
    );
  });

  it('answers an empty list from no source without --alarms', async () => {
    await expect(localAlarmSource(undefined, () => 1).read()).resolves.toEqual({
      source: 'none',
      readAt: 1,
      alarms: [],
      truncated: false,
    });
  });
});
