import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { FlowKeyMap } from '../../../agent/flow-key-map.js';
import type { FlowKey } from '../../../agent/flow-keys.js';

// Keys from a small range collide on the probe paths; large ones use every bit of the hash.
const key: fc.Arbitrary<FlowKey> = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(2 ** 32, 2 ** 32 + 1, 2 ** 48 + 53, Number.MAX_SAFE_INTEGER),
  fc.constantFrom('2001:db8::1|53', '7|2001:db8::2|123', ''),
);
const op = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    key,
    value: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('clear' as const) }),
);

describe('FlowKeyMap', () => {
  test.prop([fc.array(op, { maxLength: 400 })])(
    'answers every get, delete and size as a Map would, through growth, deletes and clears',
    (ops) => {
      const map = new FlowKeyMap();
      const model = new Map<FlowKey, number>();
      const seen = new Set<FlowKey>();
      for (const o of ops) {
        if (o.kind === 'clear') {
          map.clear();
          model.clear();
          for (const k of seen) expect(map.get(k)).toBe(-1);
          continue;
        }
        seen.add(o.key);
        if (o.kind === 'set') {
          map.set(o.key, o.value);
          model.set(o.key, o.value);
        } else {
          expect(map.delete(o.key)).toBe(model.delete(o.key));
        }
        expect(map.size).toBe(model.size);
        expect(map.get(o.key)).toBe(model.get(o.key) ?? -1);
      }
      for (const [k, v] of model) expect(map.get(k)).toBe(v);
    },
  );

  it('keeps 100,000 flow keys, deletes half, re-adds them, and finds each', () => {
    const map = new FlowKeyMap();
    // Keys shaped like the table's: local id * 2^48 + IPv4 address * 65,536 + port.
    const keyOf = (i: number) => 3 * 2 ** 48 + (0xc6000000 + i) * 65_536 + (1024 + (i % 50_000));
    for (let i = 0; i < 100_000; i++) map.set(keyOf(i), i);
    expect(map.size).toBe(100_000);
    for (let i = 0; i < 100_000; i += 2) expect(map.delete(keyOf(i))).toBe(true);
    expect(map.size).toBe(50_000);
    for (let i = 0; i < 100_000; i++) expect(map.get(keyOf(i))).toBe(i % 2 === 0 ? -1 : i);
    for (let i = 0; i < 100_000; i += 2) map.set(keyOf(i), i + 1);
    for (let i = 0; i < 100_000; i++) expect(map.get(keyOf(i))).toBe(i % 2 === 0 ? i + 1 : i);
    expect(map.get(keyOf(100_000))).toBe(-1);
  });

  it('remaps every value, number and string keys alike', () => {
    const map = new FlowKeyMap();
    map.set(7, 1);
    map.set(2 ** 50, 2);
    map.set('2001:db8::1|53', 3);
    map.delete(7);
    map.remap((v) => v * 10);
    expect([map.get(7), map.get(2 ** 50), map.get('2001:db8::1|53')]).toStrictEqual([-1, 20, 30]);
  });

  it('refuses what it cannot hold, naming it', () => {
    const map = new FlowKeyMap();
    expect(() => map.set(-1, 0)).toThrow(
      new RangeError('flow key -1 must be an integer 0..2^53-1'),
    );
    expect(() => map.set(0.5, 0)).toThrow(RangeError);
    expect(() => map.set(Number.NaN, 0)).toThrow(RangeError);
    expect(() => map.set(2 ** 53, 0)).toThrow(RangeError);
    expect(() => map.set(1, -1)).toThrow(
      new RangeError('flow key map value -1 must be an integer 0..2^31-1'),
    );
    expect(() => map.set('x', 2 ** 31)).toThrow(RangeError);
    expect(map.size).toBe(0);
  });
  it('made for N entries holds N number keys without growing', () => {
    const m = FlowKeyMap.forEntries(1000);
    const slots = m.slots;
    for (let i = 0; i < 1000; i++) m.set(2 ** 40 + i * 65_537, i);
    expect(m.slots).toBe(slots);
    expect(slots).toBeLessThanOrEqual(4096);
    for (let i = 0; i < 1000; i++) expect(m.get(2 ** 40 + i * 65_537)).toBe(i);
    m.set(1, 1);
    m.set(2, 2);
    for (let i = 3; m.slots === slots && i < 5000; i++) m.set(i, i);
    expect(m.slots).toBeGreaterThan(slots);
  });
});
