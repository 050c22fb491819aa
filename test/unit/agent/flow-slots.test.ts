import { describe, expect, it } from 'vitest';
import { FlowSlots } from '../../../agent/flow-slots.js';
import { FlowTable } from '../../../agent/flow-table.js';
import type { PeerObservation } from '../../../agent/observation.js';
import { createServiceNamer } from '../../../agent/service-names.js';

const T0 = 1_700_000_000_000;

describe('FlowSlots', () => {
  it('grows past its initial room keeping every row, and hands out zeroed rows', () => {
    const s = new FlowSlots(3, 2);
    const rows = Array.from({ length: 9 }, () => s.alloc());
    expect(rows).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(s.room).toBe(16);
    for (const r of rows) {
      expect([s.get(r, 0), s.get(r, 1), s.get(r, 2)]).toEqual([0, 0, 0]);
      s.set(r, 0, r);
      s.add(r, 2, r * 10);
      s.add(r, 2, 1);
    }
    for (const r of rows)
      expect([s.get(r, 0), s.get(r, 1), s.get(r, 2)]).toEqual([r, 0, r * 10 + 1]);
    expect(s.size).toBe(9);
  });

  it('reuses a freed row, zeroed, before growing, and leaves the other rows alone', () => {
    const s = new FlowSlots(2, 4);
    const [a, b, c] = [s.alloc(), s.alloc(), s.alloc()];
    s.set(a!, 0, 1);
    s.set(b!, 1, 2);
    s.set(c!, 0, 3);
    s.free(b!);
    expect(s.size).toBe(2);
    const d = s.alloc();
    expect(d).toBe(b);
    expect([s.get(d, 0), s.get(d, 1)]).toEqual([0, 0]);
    expect([s.get(a!, 0), s.get(c!, 0)]).toEqual([1, 3]);
    expect(s.alloc()).toBe(3);
    expect(s.room).toBe(4);
    expect(s.size).toBe(4);
  });

  it('keeps 32-bit integer fields beside the doubles: zeroed when handed out, kept when it grows', () => {
    const s = new FlowSlots(1, 1, 2);
    const rows = Array.from({ length: 5 }, () => s.alloc());
    for (const r of rows) {
      expect([s.getInt(r, 0), s.getInt(r, 1)]).toEqual([0, 0]);
      s.setInt(r, 0, -1);
      s.setInt(r, 1, 2 ** 31 - 1 - r);
      s.set(r, 0, 2 ** 40 + r);
    }
    expect(s.room).toBe(8);
    for (const r of rows)
      expect([s.getInt(r, 0), s.getInt(r, 1), s.get(r, 0)]).toEqual([
        -1,
        2 ** 31 - 1 - r,
        2 ** 40 + r,
      ]);
    s.free(rows[2]!);
    const again = s.alloc();
    expect(again).toBe(rows[2]);
    expect([s.getInt(again, 0), s.getInt(again, 1), s.get(again, 0)]).toEqual([0, 0, 0]);
    expect(s.getInt(rows[3]!, 0)).toBe(-1);
  });

  it('keeps counters exact past 2^32 (up to 2^53)', () => {
    const s = new FlowSlots(1, 1);
    const r = s.alloc();
    s.set(r, 0, 2 ** 32 - 1);
    s.add(r, 0, 2);
    expect(s.get(r, 0)).toBe(2 ** 32 + 1);
    s.set(r, 0, 2 ** 53 - 2);
    s.add(r, 0, 1);
    expect(s.get(r, 0)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('refuses a row width that is not a positive integer', () => {
    expect(() => new FlowSlots(0)).toThrow(RangeError);
    expect(() => new FlowSlots(1.5)).toThrow(/fields 1.5/);
    expect(() => new FlowSlots(1, 4, -1)).toThrow(/intFields -1/);
  });
});

function obs(remotePort: number, lastSeen: number, bytesIn = 100): PeerObservation {
  return {
    source: 'hook',
    localIp: '127.0.0.1',
    localPort: 5000,
    remoteIp: '127.0.0.1',
    remotePort,
    pktsIn: 1,
    bytesIn,
    pktsOut: 0,
    bytesOut: 0,
    firstSeen: lastSeen,
    lastSeen,
  };
}

describe('FlowTable on FlowSlots', () => {
  it('counts a flow past 2^32 bytes exactly, in deltas and in its total', () => {
    const t = new FlowTable({ serviceFor: createServiceNamer([], 300), maxFlows: 10 });
    const big = 2 ** 32 - 10;
    t.ingest([obs(7, T0, big)]);
    expect(t.drain(T0)[0]!.bytesIn).toBe(big);
    t.ingest([obs(7, T0 + 1000, big)]);
    expect(t.drain(T0 + 1000)[0]!.bytesIn).toBe(big);
    expect(t.list()[0]!.bytesIn).toBe(2 * big);
  });

  it('gives a new flow a clean slot after an old one expired or was evicted', () => {
    const t = new FlowTable({ serviceFor: createServiceNamer([], 1), maxFlows: 2 });
    t.ingest([obs(1, T0, 500), obs(2, T0, 600)]);
    t.drain(T0);
    // Both idle past the 1 s timeout: forgotten, their slots free.
    t.drain(T0 + 5000);
    expect(t.size).toBe(0);
    t.ingest([obs(3, T0 + 6000, 7)]);
    const [fresh] = t.drain(T0 + 6000);
    expect(fresh).toMatchObject({ remotePort: 3, fresh: true, bytesIn: 7, firstSeen: T0 + 6000 });
    expect(t.list()).toMatchObject([{ remotePort: 3, bytesIn: 7, firstSeen: T0 + 6000 }]);
    // Over maxFlows: the oldest (3, drained already) is evicted; the newcomers start at zero.
    t.ingest([obs(4, T0 + 6500, 8)]);
    t.ingest([obs(5, T0 + 6600, 9)]);
    const deltas = t.drain(T0 + 6600);
    expect(deltas.map((d) => [d.remotePort, d.bytesIn]).sort()).toEqual([
      [4, 8],
      [5, 9],
    ]);
    expect(t.stats().evicted).toBe(1);
    expect(t.list().map((f) => [f.remotePort, f.bytesIn])).toEqual([
      [4, 8],
      [5, 9],
    ]);
  });
});
