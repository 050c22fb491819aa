import { describe, expect, it } from 'vitest';
import { PendingEndpoints } from '../../../agent/pending-endpoints.js';
import type { BlockEndpoint } from '../../../contract/block.js';

const sum = (a: number, b: number) => a + b;

function start(i: number) {
  return {
    remoteIp: `198.51.100.${i % 250}`,
    remotePort: 40_000 + i,
    localIp: '192.0.2.1',
    localPort: 53,
    source: 'conntrack' as const,
    sampleRate: 1,
  };
}

/** Copies of every endpoint the view shows. */
function rows(list: PendingEndpoints): BlockEndpoint[] {
  const out: BlockEndpoint[] = [];
  list.forEach((e) => {
    out.push({ ...e });
  });
  return out;
}

describe('PendingEndpoints', () => {
  it('keeps every row through growth, with counters summed and seconds widened', () => {
    const list = new PendingEndpoints();
    for (let i = 0; i < 100; i++) {
      const r = list.add(i, start(i), 10, 10);
      list.addCounts(r, { pktsIn: i, bytesIn: 2 ** 40 + i, pktsOut: 1, bytesOut: 3 }, 10, 10, sum);
    }
    const r7 = list.rowOf(7);
    list.addCounts(r7, { pktsIn: 1, bytesIn: 1, pktsOut: 1, bytesOut: 1 }, 4, 50, sum);
    expect(list.length).toBe(100);
    const all = list.endpoints();
    expect(all.map((e) => e.port)).toEqual(Array.from({ length: 100 }, (_, i) => 40_000 + i));
    expect(all[7]).toEqual({
      ip: '198.51.100.7',
      port: 40_007,
      localIp: '192.0.2.1',
      localPort: 53,
      pktsIn: 8,
      bytesIn: 2 ** 40 + 8,
      pktsOut: 2,
      bytesOut: 4,
      firstSecond: 4,
      lastSecond: 50,
      source: 'conntrack',
      sampleRate: 1,
    });
    // A new object holds only the fields it has (as a block does); the view reads the same.
    expect(Object.keys(all[99]!)).not.toContain('natFromIp');
    expect(rows(list)[7]).toMatchObject(all[7]!);
  });

  it('sets the rare fields on the rows that have them only, made on first use', () => {
    const list = new PendingEndpoints();
    for (let i = 0; i < 40; i++) list.add(i, start(i), 1, 1);
    list.setNat(30, '203.0.113.5', 5000);
    list.setNat(31, '203.0.113.6', undefined);
    list.setClientId(2, 'tenant-a');
    list.setOwner(3, { pid: 9, process: 'named' });
    list.setSource(4, 'hook');
    list.raiseSampleRate(4, 8);
    list.raiseSampleRate(4, 2);
    const got = list.endpoints();
    expect(got[30]).toMatchObject({ natFromIp: '203.0.113.5', natFromPort: 5000 });
    expect(got[31]!.natFromIp).toBe('203.0.113.6');
    expect('natFromPort' in got[31]!).toBe(false);
    expect(got.filter((e) => e.natFromIp !== undefined)).toHaveLength(2);
    expect(got.filter((e) => e.clientId !== undefined).map((e) => e.port)).toEqual([40_002]);
    expect(got[3]!.owner).toEqual({ pid: 9, process: 'named' });
    expect(got[4]).toMatchObject({ source: 'hook', sampleRate: 8 });
    // Rows added after the rare columns exist start without them.
    const r = list.add('late', start(41), 1, 1);
    expect(list.endpoint(r).natFromIp).toBeUndefined();
    expect(list.endpoint(r).clientId).toBeUndefined();
  });

  it('takes rows out (leaving holes the view skips), adds them anew, and clears for the next minute', () => {
    const list = new PendingEndpoints();
    for (let i = 0; i < 20; i++) list.add(i, start(i), 1, 1);
    const taken = list.take([3, 5, 'missing']);
    expect(taken.map((e) => e.port)).toEqual([40_003, 40_005]);
    expect(list.length).toBe(18);
    expect(list.rowOf(3)).toBe(-1);
    expect(rows(list).map((e) => e.port)).not.toContain(40_003);
    list.add(3, start(3), 2, 2);
    expect(
      rows(list)
        .map((e) => e.port)
        .at(-1),
    ).toBe(40_003);
    expect(list.first(4).length).toBe(4);
    const firstFour: number[] = [];
    list.first(4).forEach((e) => {
      firstFour.push(e.port);
    });
    expect(firstFour).toEqual([40_000, 40_001, 40_002, 40_004]);
    list.clear();
    expect(list.length).toBe(0);
    expect(list.rowOf(0)).toBe(-1);
    expect(rows(list)).toEqual([]);
    const r = list.add(0, start(0), 5, 6);
    expect(list.endpoint(r)).toMatchObject({ port: 40_000, pktsIn: 0, firstSecond: 5 });
    expect(list.endpoint(r).owner).toBeUndefined();
  });
  it('after a minute of early parts keeps room for the endpoints it held, not for the holes', () => {
    const list = new PendingEndpoints();
    const fill = (from: number, to: number) => {
      for (let i = from; i < to; i++) list.add(i, start(i), 1, 1);
    };
    // A start: every client new, taken out early, then back as a row of its own.
    fill(0, 5000);
    list.take(Array.from({ length: 5000 }, (_, i) => i));
    fill(0, 5000);
    expect(list.length).toBe(5000);
    expect(list.room).toBeGreaterThanOrEqual(10_000);
    list.clear();
    expect(list.room).toBeLessThan(2 * 5000 + 1024);
    // Its index shrinks with it: the next minute finds every row it adds.
    fill(0, 5000);
    for (const k of [0, 2500, 4999]) expect(list.rowOf(k)).toBe(k);
    list.clear();
    // The next minute refills it with every row intact.
    fill(0, 5000);
    expect(list.endpoints().map((e) => e.port)).toEqual(
      Array.from({ length: 5000 }, (_, i) => 40_000 + i),
    );
  });
});
