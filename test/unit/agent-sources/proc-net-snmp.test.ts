import { describe, expect, it } from 'vitest';
import { parseProcNetSnmp, parseProcNetSnmp6, readUdpSnmp } from '../../../agent/proc-net-snmp.js';

const SNMP = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 12345
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 1001 7 45 998 40 2 3 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 9 9 9 9 9 9 9 9 9
`;

const SNMP6 = `Ip6InReceives                   	77
Udp6InDatagrams                 	500
Udp6NoPorts                     	1
Udp6InErrors                    	6
Udp6OutDatagrams                	499
Udp6RcvbufErrors                	5
Udp6SndbufErrors                	0
UdpLite6InDatagrams             	9
`;

describe('UDP counters', () => {
  it('reads the Udp: pair of /proc/net/snmp by column name, not UdpLite', () => {
    expect(parseProcNetSnmp(SNMP)).toEqual({
      udp: {
        inDatagrams: 1001,
        noPorts: 7,
        inErrors: 45,
        outDatagrams: 998,
        rcvbufErrors: 40,
        sndbufErrors: 2,
        inCsumErrors: 3,
        ignoredMulti: 0,
        memErrors: 0,
      },
      errors: [],
    });
  });

  it('reads Udp6 lines of /proc/net/snmp6', () => {
    expect(parseProcNetSnmp6(SNMP6)).toEqual({
      udp6: {
        inDatagrams: 500,
        noPorts: 1,
        inErrors: 6,
        outDatagrams: 499,
        rcvbufErrors: 5,
        sndbufErrors: 0,
      },
      errors: [],
    });
  });

  it('reports a short or garbled value line with its number', () => {
    const short = SNMP.replace('Udp: 1001 7 45 998 40 2 3 0 0', 'Udp: 1001 7');
    expect(parseProcNetSnmp(short).errors).toEqual([
      { path: '/proc/net/snmp', line: 4, reason: 'expected 9 values, got 2' },
    ]);
    const garbled = parseProcNetSnmp(SNMP.replace('Udp: 1001 7 45', 'Udp: 1001 7 4x5'));
    expect(garbled.errors).toEqual([
      { path: '/proc/net/snmp', line: 4, reason: 'bad value "4x5" for InErrors' },
    ]);
    expect(garbled.udp?.rcvbufErrors).toBe(40);
    expect(parseProcNetSnmp6('Udp6InErrors x\n', 'p').errors).toEqual([
      { path: 'p', line: 1, reason: 'bad value line "Udp6InErrors x"' },
    ]);
  });

  it('reads this host: counters present and consistent', async () => {
    const r = await readUdpSnmp();
    expect(r.errors).toEqual([]);
    expect(r.udp!.inErrors).toBeGreaterThanOrEqual(r.udp!.rcvbufErrors!);
  });
});
