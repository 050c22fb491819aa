import { isIP } from 'node:net';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { formatEndpoint, formatIpv6, normalizeIp } from '../../../contract/ip-address.js';

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

describe('formatEndpoint', () => {
  it('brackets IPv6 only', () => {
    expect(formatEndpoint('192.0.2.1', 53)).toBe('192.0.2.1:53');
    expect(formatEndpoint('2001:db8::1', 53)).toBe('[2001:db8::1]:53');
  });
});
