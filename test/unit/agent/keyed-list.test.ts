import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import type { FlowKey } from '../../../agent/flow-keys.js';
import { KeyedList } from '../../../agent/keyed-list.js';

const key: fc.Arbitrary<FlowKey> = fc.oneof(
  fc.integer({ min: 0, max: 60 }),
  fc.integer({ min: 2 ** 32, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom('2001:db8::1|53', '9|2001:db8::9|123'),
);
const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key, value: fc.integer() }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('clear' as const) }),
);

describe('KeyedList', () => {
  test.prop([fc.array(op, { maxLength: 600 })])(
    'holds what a Map holds, in the order a Map iterates, through deletes, compaction and clears',
    (ops) => {
      const list = new KeyedList<{ v: number }>();
      const model = new Map<FlowKey, { v: number }>();
      for (const o of ops) {
        if (o.kind === 'clear') {
          list.clear();
          model.clear();
          expect(list.size).toBe(0);
          expect(list.toArray()).toStrictEqual([]);
          continue;
        }
        if (o.kind === 'set') {
          list.set(o.key, { v: o.value });
          model.set(o.key, { v: o.value });
        } else expect(list.delete(o.key)).toBe(model.delete(o.key));
        expect(list.size).toBe(model.size);
        expect(list.get(o.key)).toStrictEqual(model.get(o.key));
      }
      expect(list.toArray()).toStrictEqual([...model.values()]);
      const visited: { v: number }[] = [];
      list.forEach((v) => {
        visited.push(v);
      });
      expect(visited).toStrictEqual([...model.values()]);
    },
  );

  it('finds every value after most were deleted and the list compacted', () => {
    const list = new KeyedList<number>();
    const k = (i: number) => 2 ** 40 + i * 65_537;
    for (let i = 0; i < 10_000; i++) list.set(k(i), i);
    for (let i = 0; i < 10_000; i++) if (i % 10 !== 0) list.delete(k(i));
    expect(list.size).toBe(1_000);
    for (let i = 0; i < 10_000; i++) expect(list.get(k(i))).toBe(i % 10 === 0 ? i : undefined);
    expect(list.toArray()).toStrictEqual(Array.from({ length: 1_000 }, (_, j) => j * 10));
    list.set(k(3), 3);
    expect(list.toArray().at(-1)).toBe(3);
  });

  it('is refilled after clear() as a new list would be, nothing of before left', () => {
    const list = new KeyedList<number>();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5_000; i++) list.set(2 ** 40 + i * 7 + round, round * 10_000 + i);
      for (let i = 0; i < 5_000; i += 3) list.delete(2 ** 40 + i * 7 + round);
      const kept = list.toArray();
      expect(kept).toHaveLength(5_000 - Math.ceil(5_000 / 3));
      expect(kept.every((v) => Math.floor(v / 10_000) === round)).toBe(true);
      list.clear();
      expect(list.get(2 ** 40 + 7 + round)).toBeUndefined();
      expect(list.size).toBe(0);
    }
  });
});
