import { describe, expect, it } from 'vitest';
import { itemBytes, numberBytes } from '../../../bench/dynamodb-item-size.js';
import { percentile } from '../../../bench/percentile.js';

describe('DynamoDB item size', () => {
  it('numbers: a byte per two significant digits, plus one', () => {
    expect(numberBytes(0)).toBe(2);
    expect(numberBytes(7)).toBe(2);
    expect(numberBytes(1000)).toBe(2);
    expect(numberBytes(12345)).toBe(4);
    expect(numberBytes(1_780_000_000_123)).toBe(8);
  });

  it('an item is its names plus its values, binary as its bytes', () => {
    expect(itemBytes({ pk: 'ab', sk: 'cde' })).toBe(2 + 2 + 2 + 3);
    expect(itemBytes({ d: new Uint8Array(1000), n: 503 })).toBe(1 + 1000 + 1 + 3);
    expect(itemBytes({ s: 'é' })).toBe(1 + 2);
  });
});

describe('percentile', () => {
  it('uses the nearest rank', () => {
    const s = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(s, 50)).toBe(50);
    expect(percentile(s, 95)).toBe(95);
    expect(percentile(s, 100)).toBe(100);
    expect(percentile(s, 0)).toBe(1);
    expect(percentile([7], 95)).toBe(7);
  });

  it('refuses no samples', () => {
    expect(() => percentile([], 50)).toThrow(/no samples/);
  });
});
