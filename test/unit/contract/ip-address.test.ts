import { isIP } from 'node:net';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  formatEndpoint,
  formatIpv6,
  ipv4Number,
  normalizeIp,
  parseIpv6,
} from '../../../contract/ip-address.js';

/** The straightforward parse (split on "::" and ":", a pattern per group): the model parseIpv6 must agree with. */
function modelIpv6(text: string): number[] | null {
  if (text.length < 2 || text.length > 45 || text.includes('%')) return null;
  let head = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) > lastColon) {
    const v4 = ipv4Number(text.slice(lastColon + 1));
    if (v4 < 0) return null;
    tail.push(Math.floor(v4 / 65536), v4 % 65536);
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const parts = head.split('::');
  if (parts.length > 2) return null;
  const group = (g: string): number[] | null => {
    if (g === '') return [];
    const words: number[] = [];
    for (const w of g.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      words.push(Number.parseInt(w, 16));
    }
    return words;
  };
  const left = group(parts[0]!);
  const right = parts.length === 2 ? group(parts[1]!) : [];
  if (!left || !right) return null;
  const explicit = left.length + right.length + tail.length;
  if (parts.length === 2) {
    if (explicit > 7) return null;
    return [...left, ...new Array<number>(8 - explicit).fill(0), ...right, ...tail];
  }
  return explicit === 8 ? [...left, ...tail] : null;
}

describe('normalizeIp', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:C000:0201', '192.0.2.1'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('%s -> %s', (input, expected) => {
    expect(normalizeIp(input)).toBe(expected);
  });

  it.each([
    '',
    '1.2.3',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.4.5',
    ':::',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    'fe80::1%eth0',
    'g::1',
    '12345::',
    ' 1.2.3.4',
  ])('rejects %j', (input) => {
    expect(normalizeIp(input)).toBeNull();
  });

  test.prop([fc.ipV4()])('accepts every IPv4 address unchanged', (ip) => {
    expect(normalizeIp(ip)).toBe(ip);
  });

  test.prop([fc.ipV6()])(
    'IPv6 normal form is valid, stable and agrees with the URL parser',
    (ip) => {
      const n = normalizeIp(ip);
      expect(n).not.toBeNull();
      expect(isIP(n!)).toBeGreaterThan(0);
      expect(normalizeIp(n!)).toBe(n);
      if (isIP(n!) === 6) expect(new URL(`http://[${ip}]/`).hostname).toBe(`[${n}]`);
    },
  );

  test.prop([
    fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
      minLength: 8,
      maxLength: 8,
    }),
  ])('formats any eight words as the URL parser does, zero runs anywhere', (words) => {
    const full = words.map((w) => w.toString(16)).join(':');
    expect(`[${formatIpv6(words)}]`).toBe(new URL(`http://[${full}]/`).hostname);
  });

  test.prop([fc.string({ maxLength: 50 })])(
    'never throws and only accepts what node:net accepts',
    (s) => {
      const n = normalizeIp(s);
      if (n !== null) expect(isIP(s)).toBeGreaterThan(0);
    },
  );
});

describe('parseIpv6', () => {
  const near = fc.oneof(
    // Strings of the characters addresses are made of, valid or nearly so.
    fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%'), maxLength: 46 }),
    fc.ipV6(),
    fc
      .tuple(fc.ipV6(), fc.nat(45), fc.constantFrom('', ':', '::', '.', '0', '1.2.3.4', '%'))
      .map(([ip, at, s]) => ip.slice(0, at % (ip.length + 1)) + s + ip.slice(at % (ip.length + 1))),
  );
  test.prop([near], { numRuns: 3000 })(
    'agrees with the split-and-test parse on every input',
    (s) => {
      expect(parseIpv6(s)).toEqual(modelIpv6(s));
    },
  );

  it.each([
    ['::', [0, 0, 0, 0, 0, 0, 0, 0]],
    ['1::', [1, 0, 0, 0, 0, 0, 0, 0]],
    ['::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]],
    ['1:2:3:4:5:6:7:8', [1, 2, 3, 4, 5, 6, 7, 8]],
    ['1:2:3:4:5:6:1.2.3.4', [1, 2, 3, 4, 5, 6, 0x102, 0x304]],
  ])('%s', (text, words) => {
    expect(parseIpv6(text)).toEqual(words);
  });

  it.each([
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:',
    ':1::',
    '1::2::3',
    '12345::',
    '1:2:3:4:5:6::1.2.3.4',
    '::1.2.3.04',
    'fe80::1%eth0',
    '1.2.3.4',
  ])('rejects %j', (text) => {
    expect(parseIpv6(text)).toBeNull();
  });
});

describe('formatEndpoint', () => {
  it('brackets IPv6 only', () => {
    expect(formatEndpoint('192.0.2.1', 53)).toBe('192.0.2.1:53');
    expect(formatEndpoint('2001:db8::1', 53)).toBe('[2001:db8::1]:53');
  });
});
