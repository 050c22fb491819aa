import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  decodeProcAddress,
  formatLineError,
  parseProcNetUdp,
  readProcNetUdp,
} from '../../../agent/proc-net-udp.js';
import { normalizeIp } from '../../../contract/ip-address.js';
import { kernelUdpLine, UDP_HEADER, UDP6_HEADER } from './kernel-text.js';

// Verbatim lines from a Linux 6.x host.
const REAL_UDP = `${UDP_HEADER}
  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 20815 2 0000000000000000 0
  456: 0100007F:A1B2 0100007F:0035 01 00000000:00000340 00:00000000 00000000  1000        0 31337 2 0000000000000000 17
`;
const REAL_UDP6 = `${UDP6_HEADER}
  100: 00000000000000000000000001000000:0202 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  101: 0000000000000000FFFF00000100007F:C000 0000000000000000FFFF00000100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0
  102: B80D0120000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4244 2 0000000000000000 3
`;

describe('parseProcNetUdp', () => {
  it('reads IPv4 lines: byte order, hex ports and queues, decimal uid/inode/drops', () => {
    const { sockets, errors } = parseProcNetUdp(REAL_UDP, { family: 4 });
    expect(errors).toEqual([]);
    expect(sockets).toEqual([
      {
        family: 4,
        localIp: '127.0.0.53',
        localPort: 53,
        remoteIp: '0.0.0.0',
        remotePort: 0,
        state: 7,
        connected: false,
        txQueue: 0,
        rxQueue: 0,
        uid: 101,
        inode: 20815,
        refs: 2,
        drops: 0,
      },
      {
        family: 4,
        localIp: '127.0.0.1',
        localPort: 0xa1b2,
        remoteIp: '127.0.0.1',
        remotePort: 53,
        state: 1,
        connected: true,
        txQueue: 0,
        rxQueue: 0x340,
        uid: 1000,
        inode: 31337,
        refs: 2,
        drops: 17,
      },
    ]);
  });

  it('reads IPv6 lines word by word, folding IPv4-mapped addresses', () => {
    const { sockets, errors } = parseProcNetUdp(REAL_UDP6, { family: 6 });
    expect(errors).toEqual([]);
    expect(sockets.map((s) => [s.localIp, s.localPort, s.remoteIp, s.remotePort, s.drops])).toEqual(
      [
        ['::1', 0x0202, '::', 0, 0],
        ['127.0.0.1', 0xc000, '127.0.0.1', 53, 0],
        ['2001:db8::1', 53, '::', 0, 3],
      ],
    );
  });

  it('skips a malformed line with a located error and keeps its neighbours', () => {
    const lines = REAL_UDP.split('\n');
    lines.splice(
      2,
      0,
      '  124: zz:01 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0',
    );
    const { sockets, errors } = parseProcNetUdp(lines.join('\n'), { family: 4 });
    expect(sockets.map((s) => s.inode)).toEqual([20815, 31337]);
    expect(errors).toEqual([{ path: '/proc/net/udp', line: 3, reason: 'bad address "zz:01"' }]);
    expect(formatLineError(errors[0]!)).toBe('/proc/net/udp line 3: bad address "zz:01"');
  });

  it('names the field that is wrong', () => {
    const good = REAL_UDP.split('\n')[1]!;
    const cases: Array<[string, string]> = [
      [good.replace('3500007F:0035', '3500007F:00G5'), 'bad address "3500007F:00G5"'],
      [good.replace(' 07 ', ' 7Z '), 'bad state "7Z"'],
      [good.replace('00000000:00000000', '00000000-00000000'), 'bad queues "00000000-00000000"'],
      [good.replace(' 20815 ', ' -1 '), 'bad inode "-1"'],
      [good.replace(/ 0$/, ' x'), 'bad drops "x"'],
      [good.slice(0, 40), 'expected 13 fields, got 5'],
    ];
    for (const [line, reason] of cases) {
      const r = parseProcNetUdp(line, { family: 4, path: 'p' });
      expect(r.errors).toEqual([{ path: 'p', line: 1, reason }]);
      expect(r.sockets).toEqual([]);
    }
  });

  test.prop([
    fc.array(
      fc.record({
        v6: fc.boolean(),
        local: fc.oneof(fc.ipV4(), fc.ipV6()),
        remote: fc.oneof(fc.ipV4(), fc.ipV6()),
        localPort: fc.integer({ min: 0, max: 65535 }),
        remotePort: fc.integer({ min: 0, max: 65535 }),
        state: fc.constantFrom(1, 7),
        txQueue: fc.nat({ max: 0xffffffff }),
        rxQueue: fc.nat({ max: 0xffffffff }),
        uid: fc.nat({ max: 0xffffffff }),
        inode: fc.nat(),
        drops: fc.nat({ max: 0xffffffff }),
      }),
      { maxLength: 20 },
    ),
  ])('decodes whatever the kernel would print', (specs) => {
    for (const family of [4, 6] as const) {
      const wanted = specs.map((s, slot) => {
        // udp lists IPv4 only; udp6 lists IPv6 (and IPv4 as mapped addresses).
        const pick = (ip: string) =>
          family === 4
            ? ip.includes(':')
              ? '192.0.2.1'
              : ip
            : ip.includes(':')
              ? ip
              : `::ffff:${ip}`;
        return { ...s, slot, localIp: pick(s.local), remoteIp: pick(s.remote), refs: 2 };
      });
      const text = [family === 4 ? UDP_HEADER : UDP6_HEADER, ...wanted.map(kernelUdpLine), ''].join(
        '\n',
      );
      const { sockets, errors } = parseProcNetUdp(text, { family });
      expect(errors).toEqual([]);
      expect(sockets).toHaveLength(wanted.length);
      sockets.forEach((s, i) => {
        const w = wanted[i]!;
        expect(s.localIp).toBe(normalizeIp(w.localIp));
        expect(s.remoteIp).toBe(normalizeIp(w.remoteIp));
        expect([s.localPort, s.remotePort, s.state, s.connected]).toEqual([
          w.localPort,
          w.remotePort,
          w.state,
          w.state === 1,
        ]);
        expect([s.txQueue, s.rxQueue, s.uid, s.inode, s.drops]).toEqual([
          w.txQueue,
          w.rxQueue,
          w.uid,
          w.inode,
          w.drops,
        ]);
      });
    }
  });

  it('rejects addresses of the wrong width', () => {
    expect(decodeProcAddress('0100007F', 6)).toBeNull();
    expect(decodeProcAddress('00000000000000000000000001000000', 4)).toBeNull();
    expect(decodeProcAddress('0100007', 4)).toBeNull();
  });
});

describe('readProcNetUdp', () => {
  it('reads the real tables of this host without errors', async () => {
    const { errors, sockets } = await readProcNetUdp();
    expect(errors).toEqual([]);
    for (const s of sockets) expect(normalizeIp(s.localIp)).toBe(s.localIp);
  });

  it('reports an unreadable table as an error instead of throwing', async () => {
    const r = await readProcNetUdp({ netDir: '/nonexistent-uws' });
    expect(r.sockets).toEqual([]);
    expect(r.errors).toEqual([
      { path: '/nonexistent-uws/udp', line: 0, reason: 'cannot read: ENOENT' },
    ]);
  });
});
