/**
 * GET /v1/alarms from CloudWatch: DescribeAlarms entries shaped into answer
 * entries (client-count and operations alarms), answer order, and the
 * per-instance cache. There is no CloudWatch emulator: a recording client
 * stands in for DescribeAlarms and answers in its documented shape.
 */
import type { DescribeAlarmsCommand, MetricAlarm } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import { clientAlarmName, METRICS } from '../../../contract/resources.js';
import { alarmsInOrder } from '../../../functions/query/alarm-source.js';
import { alarmEntryOf, cloudWatchAlarms } from '../../../functions/query/cloudwatch-alarms.js';

const CHANGED = new Date('2026-12-02T09:00:00Z');

const clientAlarm: MetricAlarm = {
  AlarmName: clientAlarmName('udpwatch', 'dns', METRICS.activeClients, true, 10),
  StateValue: 'ALARM',
  StateReason: 'Threshold Crossed: 1 datapoint [3.0] was less than the threshold (10.0).',
  StateTransitionedTimestamp: CHANGED,
  StateUpdatedTimestamp: new Date('2026-12-02T09:05:00Z'),
  MetricName: METRICS.activeClients,
  Namespace: 'udpwatch',
  Dimensions: [
    { Name: 'service', Value: 'udpwatch' },
    { Name: METRICS.serviceDimension, Value: 'dns' },
  ],
  Threshold: 10,
  ComparisonOperator: 'LessThanThreshold',
};

const mathAlarm: MetricAlarm = {
  AlarmName: 'udpwatch-AgentLoss',
  StateValue: 'OK',
  StateReason: 'Threshold Crossed: no datapoints were above the threshold.',
  StateUpdatedTimestamp: CHANGED,
  Metrics: [
    {
      Id: 'dropped',
      ReturnData: false,
      MetricStat: {
        Metric: { Namespace: 'udpwatch', MetricName: METRICS.agentsDropped },
        Period: 60,
        Stat: 'Maximum',
      },
    },
    { Id: 'growth', Expression: 'RATE(dropped)', ReturnData: true },
  ],
  Threshold: 0,
  ComparisonOperator: 'GreaterThanThreshold',
};

describe('alarm entries from DescribeAlarms', () => {
  it('shapes a client-count alarm: service, metric, bound, threshold, state, reason, last change', () => {
    expect(alarmEntryOf(clientAlarm)).toEqual({
      name: 'udpwatch-dns-ActiveClients-below-10',
      service: 'dns',
      metric: 'ActiveClients',
      bound: 'min',
      threshold: 10,
      state: 'ALARM',
      reason: clientAlarm.StateReason,
      changedAt: CHANGED.getTime(),
    });
  });

  it('shapes a metric-math operations alarm without a service', () => {
    expect(alarmEntryOf(mathAlarm)).toMatchObject({
      name: 'udpwatch-AgentLoss',
      service: null,
      metric: 'RATE(dropped)',
      bound: 'max',
      threshold: 0,
      state: 'OK',
      changedAt: CHANGED.getTime(),
    });
  });

  it('leaves out an alarm without a name or with a state it does not know', () => {
    expect(alarmEntryOf({ ...clientAlarm, AlarmName: undefined })).toBeNull();
    expect(alarmEntryOf({ ...clientAlarm, StateValue: 'BROKEN' as never })).toBeNull();
  });

  it('orders ALARM first, then INSUFFICIENT_DATA, then OK, by name within each', () => {
    const e = (name: string, state: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA') => ({
      ...alarmEntryOf(clientAlarm)!,
      name,
      state,
    });
    expect(
      alarmsInOrder([e('b', 'OK'), e('c', 'INSUFFICIENT_DATA'), e('z', 'ALARM'), e('a', 'OK')]).map(
        (x) => `${x.state}:${x.name}`,
      ),
    ).toEqual(['ALARM:z', 'INSUFFICIENT_DATA:c', 'OK:a', 'OK:b']);
  });
});

/** A DescribeAlarms stand-in: answers the pages given, records each request's input. */
function recordingClient(pages: MetricAlarm[][], fail = false) {
  const inputs: DescribeAlarmsCommand['input'][] = [];
  return {
    inputs,
    client: {
      send: async (command: DescribeAlarmsCommand) => {
        inputs.push(command.input);
        if (fail) throw new Error('AccessDenied');
        const n = command.input.NextToken ? Number(command.input.NextToken) : 0;
        return {
          MetricAlarms: pages[n],
          NextToken: n + 1 < pages.length ? String(n + 1) : undefined,
        };
      },
    } as never,
  };
}

describe('the CloudWatch alarm source', () => {
  it("asks for the stack's metric alarms by prefix, follows pages, and orders the answer", async () => {
    const { client, inputs } = recordingClient([[mathAlarm], [clientAlarm]]);
    const source = cloudWatchAlarms({ client, prefix: 'udpwatch-', now: () => 1000 });
    const reading = await source.read();
    expect(inputs.map((i) => [i.AlarmNamePrefix, i.AlarmTypes, i.NextToken])).toEqual([
      ['udpwatch-', ['MetricAlarm'], undefined],
      ['udpwatch-', ['MetricAlarm'], '1'],
    ]);
    expect(reading.source).toBe('cloudwatch');
    expect(reading.readAt).toBe(1000);
    expect(reading.alarms.map((a) => a.name)).toEqual([
      'udpwatch-dns-ActiveClients-below-10',
      'udpwatch-AgentLoss',
    ]);
  });

  it('reuses a reading for 30 s, then reads again; concurrent requests share one call', async () => {
    let t = 0;
    const { client, inputs } = recordingClient([[clientAlarm]]);
    const source = cloudWatchAlarms({ client, prefix: 'udpwatch-', now: () => t });
    await Promise.all([source.read(), source.read(), source.read()]);
    expect(inputs).toHaveLength(1);
    t = 29_999;
    await source.read();
    expect(inputs).toHaveLength(1);
    t = 30_000;
    await source.read();
    expect(inputs).toHaveLength(2);
  });

  it('stops after ten pages and says the answer is truncated', async () => {
    const pages = Array.from({ length: 12 }, (_, i) => [
      { ...clientAlarm, AlarmName: `udpwatch-dns-${i}` },
    ]);
    const { client, inputs } = recordingClient(pages);
    const reading = await cloudWatchAlarms({ client, prefix: 'udpwatch-', now: () => 0 }).read();
    expect(inputs).toHaveLength(10);
    expect(reading.alarms).toHaveLength(10);
    expect(reading.truncated).toBe(true);
    const whole = await cloudWatchAlarms({
      client: recordingClient(pages.slice(0, 10)).client,
      prefix: 'udpwatch-',
      now: () => 0,
    }).read();
    expect(whole.truncated).toBe(false);
  });

  it('does not keep a failed reading: the next request asks again', async () => {
    const { client, inputs } = recordingClient([], true);
    const source = cloudWatchAlarms({ client, prefix: 'udpwatch-', now: () => 0 });
    await expect(source.read()).rejects.toThrow('AccessDenied');
    await expect(source.read()).rejects.toThrow('AccessDenied');
    expect(inputs).toHaveLength(2);
  });
});
