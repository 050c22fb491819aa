import { describe, expect, it } from 'vitest';
import { parseClientFilter, splitEndpoint } from '../../../ui/page/client-filter.js';

const clients = [
  { ip: '192.0.2.7', port: 5300 },
  { ip: '192.0.2.200', port: 53 },
  { ip: '198.51.100.1', port: 53, natFrom: ['10.1.2.3:40000'] },
  { ip: '2001:db8::5', port: 53 },
  { ip: '2001:db9::5', port: 1234 },
];

function matching(text: string): string[] {
  const f = parseClientFilter(text);
  if (!f.ok) throw new Error(f.error);
  return clients.filter((c) => f.test(c)).map((c) => `${c.ip}:${c.port}`);
}

describe('the client filter', () => {
  it('matches an exact IP, not a prefix of its text', () => {
    expect(matching('192.0.2.7')).toEqual(['192.0.2.7:5300']);
  });

  it('matches CIDR blocks bit by bit, IPv4 and IPv6', () => {
    expect(matching('192.0.2.0/25')).toEqual(['192.0.2.7:5300']);
    expect(matching('192.0.2.0/24')).toEqual(['192.0.2.7:5300', '192.0.2.200:53']);
    expect(matching('2001:db8::/32')).toEqual(['2001:db8::5:53']);
    expect(matching('0.0.0.0/0')).toHaveLength(3);
  });

  it('matches ports, and all terms together', () => {
    expect(matching(':53')).toEqual(['192.0.2.200:53', '198.51.100.1:53', '2001:db8::5:53']);
    expect(matching('192.0.2.0/24 :53')).toEqual(['192.0.2.200:53']);
  });

  it('matches pre-NAT addresses too', () => {
    expect(matching('10.0.0.0/8')).toEqual(['198.51.100.1:53']);
    expect(matching(':40000')).toEqual(['198.51.100.1:53']);
  });

  it('folds IPv4-mapped IPv6 to IPv4', () => {
    expect(matching('::ffff:192.0.2.7')).toEqual(['192.0.2.7:5300']);
  });

  it('matches everything when empty', () => {
    expect(matching('  ')).toHaveLength(clients.length);
  });

  it('names the term it cannot read', () => {
    for (const [text, says] of [
      ['192.0.2.300', '192.0.2.300: not an IP'],
      ['10.0.0.0/33', 'prefix length is 0 to 32'],
      [':70000', 'a port is 0 to 65535'],
      ['dns', 'dns: not an IP'],
    ] as const) {
      const f = parseClientFilter(text);
      expect(f.ok).toBe(false);
      if (!f.ok) expect(f.error).toContain(says);
    }
  });

  it('splits endpoints of both families', () => {
    expect(splitEndpoint('[2001:db8::1]:53')).toEqual({ ip: '2001:db8::1', port: 53 });
    expect(splitEndpoint('192.0.2.1:53')).toEqual({ ip: '192.0.2.1', port: 53 });
    expect(splitEndpoint('2001:db8::1')).toEqual({ ip: '2001:db8::1' });
  });
});
