/** The page's alarm lines: a word and a symbol for each state, never colour alone. */
import { describe, expect, it } from 'vitest';
import type { AlarmEntry } from '../../../contract/api-schemas.js';
import { alarmsNote, serviceAlarmLine, worstState } from '../../../ui/page/alarm-state.js';

const alarm = (over: Partial<AlarmEntry>): AlarmEntry => ({
  name: 'udpwatch-dns-ActiveClients-below-10',
  service: 'dns',
  metric: 'ActiveClients',
  bound: 'min',
  threshold: 10,
  state: 'OK',
  reason: '',
  changedAt: null,
  ...over,
});

describe('alarm lines', () => {
  it("tells a service's worst state in words and a symbol, with what fires", () => {
    const firing = alarm({ state: 'ALARM' });
    const ok = alarm({ name: 'x', metric: 'ActiveClientIPs', bound: 'max', threshold: 50 });
    expect(worstState([ok, firing])).toBe('ALARM');
    expect(serviceAlarmLine([ok, firing])).toBe(
      'Alarms: ✖ ALARM — ActiveClients below 10 (1 of 2 in ALARM)',
    );
    expect(serviceAlarmLine([ok])).toBe('Alarms: ✓ OK — ActiveClientIPs above 50');
    expect(serviceAlarmLine([alarm({ state: 'INSUFFICIENT_DATA' })])).toBe(
      'Alarms: ? INSUFFICIENT DATA — ActiveClients below 10',
    );
    expect(serviceAlarmLine([])).toBeUndefined();
  });

  it('sums up the answer under the heading, naming firing operations alarms', () => {
    expect(alarmsNote({ now: 0, readAt: 0, source: 'none', alarms: [], truncated: false })).toMatch(
      /^Alarms: none configured/,
    );
    expect(
      alarmsNote({
        now: 0,
        readAt: 0,
        source: 'cloudwatch',
        truncated: false,
        alarms: [
          alarm({ state: 'ALARM' }),
          alarm({ name: 'udpwatch-AgentLoss', service: null, state: 'ALARM' }),
          alarm({ name: 'y' }),
        ],
      }),
    ).toBe(
      'Alarms (CloudWatch): 3 configured, 2 in ALARM; operations alarms in ALARM: udpwatch-AgentLoss.',
    );
  });
});
