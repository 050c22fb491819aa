import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  DurationError,
  formatAgo,
  formatSpan,
  parseDuration,
  parseWholeSeconds,
} from '../../../cli/duration.js';
import { formatBytes, formatCount, formatRate } from '../../../cli/human-units.js';

describe('parseDuration', () => {
  it.each([
    ['300', 300],
    ['300s', 300],
    ['5m', 300],
    ['1h', 3600],
    ['1.5h', 5400],
    ['2d', 172_800],
    ['500ms', 0.5],
    [' 10 min ', 600],
    ['2S', 2],
  ])('%j is %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '5x', 'm', '-5m', '5m3s', '1e3', 'five'])('rejects %j naming it', (text) => {
    expect(() => parseDuration(text)).toThrow(DurationError);
    expect(() => parseDuration(text)).toThrow(JSON.stringify(text));
  });

  test.prop([
    fc.integer({ min: 1, max: 100_000 }),
    fc.constantFrom(['s', 1], ['m', 60], ['h', 3600]),
  ])('n<unit> is n times the unit', (n, [unit, factor]) => {
    expect(parseDuration(`${n}${unit}`)).toBe(n * (factor as number));
  });
});

describe('parseWholeSeconds', () => {
  it('accepts whole seconds within the bound', () => {
    expect(parseWholeSeconds('5m', 3600)).toBe(300);
    expect(parseWholeSeconds('1h', 3600)).toBe(3600);
  });
  it('refuses fractions, zero and values over the bound', () => {
    expect(() => parseWholeSeconds('1.5s', 3600)).toThrow(/whole number of seconds/);
    expect(() => parseWholeSeconds('0', 3600)).toThrow(/at least 1s/);
    expect(() => parseWholeSeconds('2h', 3600)).toThrow(/maximum of 1h/);
  });
});

describe('formatSpan and formatAgo', () => {
  it.each([
    [0, '0s'],
    [45, '45s'],
    [60, '1m'],
    [90, '1m30s'],
    [3600, '1h'],
    [5400, '1h30m'],
    [86_400, '1d'],
    [97_200, '1d3h'],
    [0.3, '300ms'],
    [1.5, '1.5s'],
  ])('%d s is %s', (s, text) => {
    expect(formatSpan(s)).toBe(text);
  });

  it('says how long ago, in one unit', () => {
    const now = 1_800_000_000_000;
    expect(formatAgo(now - 12_000, now)).toBe('12s ago');
    expect(formatAgo(now - 8_700, now)).toBe('8s ago');
    expect(formatAgo(now - 200, now)).toBe('just now');
    expect(formatAgo(now - 5_400_000, now)).toBe('1h ago');
    expect(formatAgo(now - 185_000, now)).toBe('3m ago');
    expect(formatAgo(now + 5_000, now)).toBe('in 5s');
  });
});

describe('human units', () => {
  it.each([
    [0, '0'],
    [999, '999'],
    [1000, '1k'],
    [1234, '1.23k'],
    [12_345, '12.3k'],
    [999_999, '1M'],
    [45_600_000, '45.6M'],
  ])('count %d is %s', (n, text) => {
    expect(formatCount(n)).toBe(text);
  });

  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1024, '1 KiB'],
    [3.4 * 1024 * 1024, '3.4 MiB'],
    [1024 ** 3 * 2.5, '2.5 GiB'],
  ])('%d bytes is %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('rates keep small fractions', () => {
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(0.5)).toBe('0.5/s');
    expect(formatRate(1500)).toBe('1.5k/s');
  });

  test.prop([fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })])(
    'a formatted count is short and scales back to within 0.5% of the value',
    (n) => {
      const text = formatCount(n);
      expect(text.length).toBeLessThanOrEqual(5);
      const m = /^([\d.]+)([kMGTP]?)$/.exec(text);
      expect(m).not.toBeNull();
      const factor = 1000 ** ['', 'k', 'M', 'G', 'T', 'P'].indexOf(m![2]!);
      expect(Math.abs(Number(m![1]) * factor - n)).toBeLessThanOrEqual(Math.max(0.5, n * 0.005));
    },
  );
});
