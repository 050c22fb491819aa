import { describe, expect, it } from 'vitest';
import { putRecordsCalls } from '../../../bench/cases/packing.js';
import { percentile } from '../../../bench/percentile.js';

describe('putRecordsCalls', () => {
  it('counts one call per 500 records', () => {
    expect(putRecordsCalls([])).toBe(0);
    expect(putRecordsCalls(new Array(500).fill(100))).toBe(1);
    expect(putRecordsCalls(new Array(501).fill(100))).toBe(2);
  });

  it('starts a new call before 5 MiB would be exceeded', () => {
    const oneMiB = 1024 * 1024;
    expect(putRecordsCalls(new Array(5).fill(oneMiB))).toBe(1);
    expect(putRecordsCalls(new Array(6).fill(oneMiB))).toBe(2);
    expect(putRecordsCalls([oneMiB * 4, oneMiB, 1])).toBe(2);
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
