import { describe, expect, it } from 'vitest';
import { HookDropTotals, hookObservations } from '../../../agent/hook-receiver.js';
import type { HookMessage } from '../../../contract/hook-protocol.js';

const T = 1_700_000_000_000;
const msg = (over: Partial<HookMessage>): HookMessage => ({
  v: 1,
  pid: 10,
  process: 'node',
  at: T,
  flows: [],
  overflowPackets: 0,
  droppedFlows: 0,
  droppedPackets: 0,
  ...over,
});

describe('HookDropTotals', () => {
  it('adds each daemon’s increase of its cumulative counters, and overflow as deltas', () => {
    const t = new HookDropTotals();
    expect(t.add(msg({ pid: 1, droppedFlows: 2, droppedPackets: 7 }))).toBe(true);
    expect(t.add(msg({ pid: 1, droppedFlows: 2, droppedPackets: 7, overflowPackets: 3 }))).toBe(
      false,
    );
    expect(t.add(msg({ pid: 2, droppedFlows: 1, droppedPackets: 4 }))).toBe(true);
    expect(t.add(msg({ pid: 1, droppedFlows: 5, droppedPackets: 9 }))).toBe(false);
    expect([t.droppedFlows, t.droppedPackets]).toEqual([5 + 1, 9 + 3 + 4]);
    expect(t.pids()).toEqual([2, 1]);
  });

  it('counts a new process under a reused pid from zero, so totals never go back', () => {
    const t = new HookDropTotals();
    t.add(msg({ pid: 7, droppedFlows: 10, droppedPackets: 100 }));
    // The pid's counters fell: a new process; all of its count is new.
    expect(t.add(msg({ pid: 7, droppedFlows: 1, droppedPackets: 3 }))).toBe(true);
    expect([t.droppedFlows, t.droppedPackets]).toEqual([11, 103]);
    t.add(msg({ pid: 7, droppedFlows: 2, droppedPackets: 5 }));
    expect([t.droppedFlows, t.droppedPackets]).toEqual([12, 105]);
  });

  it('remembers at most maxDaemons, forgetting the one silent longest', () => {
    const t = new HookDropTotals(2);
    t.add(msg({ pid: 1 }));
    t.add(msg({ pid: 2 }));
    t.add(msg({ pid: 1 }));
    t.add(msg({ pid: 3 }));
    expect(t.pids()).toEqual([1, 3]);
    expect(t.add(msg({ pid: 2 }))).toBe(true);
  });
});

describe('hookObservations', () => {
  it('makes one hook observation per row with the daemon’s pid and name', () => {
    const obs = hookObservations(
      msg({
        pid: 42,
        process: 'srcds',
        flows: [
          ['127.0.0.1', 5000, '192.0.2.7', 4000, 2, 20, 1, 10, T - 500, T - 100, 'cust-1'],
          // A clock stepped back: lastSeen before firstSeen; null client id.
          ['::1', 5001, '2001:db8::1', 4001, 1, 5, 0, 0, T - 50, T - 80, null],
        ],
      }),
    );
    expect(obs).toEqual([
      {
        source: 'hook',
        localIp: '127.0.0.1',
        localPort: 5000,
        remoteIp: '192.0.2.7',
        remotePort: 4000,
        pktsIn: 2,
        bytesIn: 20,
        pktsOut: 1,
        bytesOut: 10,
        firstSeen: T - 500,
        lastSeen: T - 100,
        pid: 42,
        process: 'srcds',
        clientId: 'cust-1',
      },
      {
        source: 'hook',
        localIp: '::1',
        localPort: 5001,
        remoteIp: '2001:db8::1',
        remotePort: 4001,
        pktsIn: 1,
        bytesIn: 5,
        pktsOut: 0,
        bytesOut: 0,
        firstSeen: T - 50,
        lastSeen: T - 50,
        pid: 42,
        process: 'srcds',
      },
    ]);
  });
});
