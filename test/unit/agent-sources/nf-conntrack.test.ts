import { describe, expect, it } from 'vitest';
import { parseConntrack } from '../../../agent/nf-conntrack.js';
import { formatLineError } from '../../../agent/proc-net-udp.js';

// As /proc/net/nf_conntrack prints them (ct_seq_show: %-8s padding, %pI6 full form).
const PROC_TEXT = [
  'ipv4     2 udp      17 29 src=192.0.2.2 dst=203.0.113.2 sport=40001 dport=5000 packets=3 bytes=180 [UNREPLIED] src=203.0.113.2 dst=192.0.2.2 sport=5000 dport=40001 packets=0 bytes=0 mark=0 zone=0 use=2',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=192.0.2.2 dst=203.0.113.2 sport=50000 dport=22 src=203.0.113.2 dst=192.0.2.2 sport=22 dport=50000 [ASSURED] mark=0 zone=0 use=2',
  'ipv6     10 udp      17 115 src=2001:0db8:0000:0000:0000:0000:0000:0002 dst=2001:0db8:0000:0000:0000:0000:0000:0001 sport=5353 dport=53 packets=4 bytes=400 src=2001:0db8:0000:0000:0000:0000:0000:0001 dst=2001:0db8:0000:0000:0000:0000:0000:0002 sport=53 dport=5353 packets=4 bytes=800 [ASSURED] mark=7 zone=3 use=1',
  '',
].join('\n');

describe('parseConntrack', () => {
  it('reads UDP entries with both tuples, counters and flags, skipping other protocols', () => {
    const { entries, errors, skipped } = parseConntrack(PROC_TEXT);
    expect(errors).toEqual([]);
    expect(skipped).toBe(1);
    expect(entries).toEqual([
      {
        family: 4,
        protocol: 'udp',
        timeout: 29,
        orig: {
          src: '192.0.2.2',
          dst: '203.0.113.2',
          sport: 40001,
          dport: 5000,
          packets: 3,
          bytes: 180,
        },
        reply: {
          src: '203.0.113.2',
          dst: '192.0.2.2',
          sport: 5000,
          dport: 40001,
          packets: 0,
          bytes: 0,
        },
        unreplied: true,
        assured: false,
        zone: 0,
        mark: 0,
      },
      {
        family: 6,
        protocol: 'udp',
        timeout: 115,
        orig: {
          src: '2001:db8::2',
          dst: '2001:db8::1',
          sport: 5353,
          dport: 53,
          packets: 4,
          bytes: 400,
        },
        reply: {
          src: '2001:db8::1',
          dst: '2001:db8::2',
          sport: 53,
          dport: 5353,
          packets: 4,
          bytes: 800,
        },
        unreplied: false,
        assured: true,
        zone: 3,
        mark: 7,
      },
    ]);
  });

  it('reads entries without counters (accounting off) and all protocols on request', () => {
    const noAcct =
      'ipv4     2 udp      17 13 src=198.51.100.9 dst=198.51.100.1 sport=1 dport=2 [UNREPLIED] src=198.51.100.1 dst=198.51.100.9 sport=2 dport=1 mark=0 use=2';
    const { entries } = parseConntrack(noAcct);
    expect(entries[0]!.orig).toEqual({
      src: '198.51.100.9',
      dst: '198.51.100.1',
      sport: 1,
      dport: 2,
    });
    expect(entries[0]!.reply.packets).toBeUndefined();
    expect(parseConntrack(PROC_TEXT, { protocol: null }).entries).toHaveLength(3);
  });

  it('reads the conntrack tool formats (extended and plain, compressed IPv6)', () => {
    const text = [
      'ipv6     10 udp      17 27 src=2001:db8::2 dst=2001:db8::1 sport=1000 dport=53 packets=1 bytes=61 [UNREPLIED] src=2001:db8::1 dst=2001:db8::2 sport=53 dport=1000 packets=0 bytes=0 mark=0 use=1',
      'udp      17 27 src=192.0.2.7 dst=192.0.2.1 sport=1000 dport=53 packets=1 bytes=61 [UNREPLIED] src=192.0.2.1 dst=192.0.2.7 sport=53 dport=1000 packets=0 bytes=0 mark=0 use=1',
    ].join('\n');
    const { entries, errors } = parseConntrack(text, { path: 'conntrack -L' });
    expect(errors).toEqual([]);
    expect(entries.map((e) => [e.family, e.orig.src, e.reply.dst, e.orig.bytes])).toEqual([
      [6, '2001:db8::2', '2001:db8::2', 61],
      [4, '192.0.2.7', '192.0.2.7', 61],
    ]);
  });

  it('reports each malformed line with its number and keeps the good ones', () => {
    const lines = PROC_TEXT.split('\n');
    lines.splice(
      1,
      0,
      'ipv4     2 udp      17 29 src=192.0.2.300 dst=203.0.113.2 sport=1 dport=2 src=203.0.113.2 dst=192.0.2.3 sport=2 dport=1',
    );
    lines.splice(3, 0, 'ipv4     2 udp      17 29 src=192.0.2.3 dst=203.0.113.2 sport=1 dport=2');
    lines.splice(4, 0, 'ipv4     2 udp      17 x src=192.0.2.3');
    lines.splice(
      5,
      0,
      'ipv4     2 udp      17 29 src=192.0.2.3 dst=203.0.113.2 sport=99999 dport=2',
    );
    lines.splice(
      6,
      0,
      'ipv4     2 udp      17 29 src=2001:db8::1 dst=203.0.113.2 sport=1 dport=2 src=203.0.113.2 dst=192.0.2.3 sport=2 dport=1',
    );
    const { entries, errors } = parseConntrack(lines.join('\n'));
    expect(entries).toHaveLength(2);
    expect(errors.map(formatLineError)).toEqual([
      '/proc/net/nf_conntrack line 2: bad src "192.0.2.300"',
      '/proc/net/nf_conntrack line 4: incomplete reply tuple',
      '/proc/net/nf_conntrack line 5: bad timeout "x"',
      '/proc/net/nf_conntrack line 6: bad sport "99999"',
      '/proc/net/nf_conntrack line 7: addresses do not match ipv4',
    ]);
  });
});
