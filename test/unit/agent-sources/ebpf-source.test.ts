/**
 * The eBPF source's pure parts: bpftrace's JSON lines into batches, tuple
 * keys into addresses, tuples into flows of local sockets, the ownership rule
 * in the flow table, and the missing-requirement messages.
 */
import { endianness } from 'node:os';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { BpftraceOutputParser, KernelClock } from '../../../agent/bpftrace-output.js';
import { DrainedTuples, MAX_KEY_WORDS } from '../../../agent/drained-tuples.js';
import { decodeTupleKey, tuplesToObservations } from '../../../agent/ebpf-flows.js';
import { CAP, type EbpfFacts, ebpfProblem } from '../../../agent/ebpf-requirements.js';
import { FlowTable } from '../../../agent/flow-table.js';
import type { ListeningSocket, PeerObservation } from '../../../agent/observation.js';
import { createServiceNamer } from '../../../agent/service-names.js';
import { SocketIndex } from '../../../agent/socket-index.js';
import { normalizeIp } from '../../../contract/ip-address.js';

const LE = endianness() === 'LE';

/** Encodes a tuple the way the program does: raw network-order words read in host order. */
function key(
  dir: 'in' | 'out' | 'lo',
  src: string,
  sport: number,
  dst: string,
  dport: number,
): string {
  const v6 = src.includes(':');
  const raw16 = (p: number) => (LE ? ((p & 0xff) << 8) | (p >> 8) : p);
  const bytes = (ip: string): Buffer => {
    if (!v6) return Buffer.from(ip.split('.').map(Number));
    const [head, tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((w) =>
      parseInt(w, 16),
    );
    const b = Buffer.alloc(16);
    for (const [i, w] of words.entries()) b.writeUInt16BE(w, i * 2);
    return b;
  };
  const word = (b: Buffer, at: number) => BigInt(LE ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const halves = (ip: string): [bigint, bigint] => {
    const b = bytes(ip);
    if (!v6) return [word(b, 0), 0n];
    return [word(b, 0) | (word(b, 4) << 32n), word(b, 8) | (word(b, 12) << 32n)];
  };
  const meta =
    (BigInt(['in', 'out', 'lo'].indexOf(dir)) << 33n) |
    (BigInt(v6 ? 1 : 0) << 32n) |
    (BigInt(raw16(sport)) << 16n) |
    BigInt(raw16(dport));
  const [ah, al] = halves(src);
  const [bh, bl] = halves(dst);
  // IPv4: both addresses in one word, source high; IPv6: four halves.
  return (v6 ? [meta, ah, al, bh, bl] : [meta, (ah << 32n) | bh]).join(',');
}

const listener = (
  ip: string,
  port: number,
  extra: Partial<ListeningSocket> = {},
): ListeningSocket => ({
  localIp: ip,
  localPort: port,
  family: ip.includes(':') ? 6 : 4,
  inode: port,
  drops: 0,
  rxQueueBytes: 0,
  pid: 7,
  process: 'named',
  ...extra,
});

/** A tuple's counters as a test writes them, key as bpftrace prints it. */
interface Tuple {
  key: string;
  packets: number;
  bytes: number;
  firstNs: number;
  lastNs: number;
}

/** Row `r`'s key as bpftrace prints it (decimal u64s joined by commas). */
function keyText(d: DrainedTuples, r: number): string {
  const words = new Float64Array(MAX_KEY_WORDS);
  const width = d.keyInto(r, words);
  const parts: string[] = [];
  for (let i = 0; i < width; i += 2) {
    parts.push(((BigInt(words[i]!) << 32n) | BigInt(words[i + 1]!)).toString());
  }
  return parts.join(',');
}

/** The rows a DrainedTuples holds, as plain tuples. */
const rowsOf = (d: DrainedTuples): Tuple[] =>
  Array.from({ length: d.size }, (_, r) => ({
    key: keyText(d, r),
    packets: d.packets(r),
    bytes: d.bytes(r),
    firstNs: d.firstNs(r),
    lastNs: d.lastNs(r),
  }));

/** A sum as the program packs it: packets << 40 | payload bytes, as decimal text. */
const sum = (packets: number, bytes: number) =>
  ((BigInt(packets) << 40n) | BigInt(bytes)).toString();

/** A seen value as the program packs it: first << 20 | span, in units of 2^20 ns. */
const seenOf = (firstUnits: bigint, spanUnits: bigint) =>
  ((firstUnits << 20n) | spanUnits).toString();

/** One printed map line of `name` with these entries. */
const mapLine = (name: string, entries: [string, string][]) =>
  `{"type": "map", "data": {"${name}": {${entries.map(([k, v]) => `"${k}": ${v}`).join(', ')}}}}`;

/** The drained tuples of one drain of these tuples, as bpftrace prints it (IPv4 keys in @s4/@t4). */
function drainOf(tuples: Tuple[]): DrainedTuples {
  const d = new DrainedTuples();
  const p = new BpftraceOutputParser(d);
  const units = (ns: number) => BigInt(Math.round(ns / 2 ** 20));
  const family = (t: Tuple) => (t.key.split(',').length === 2 ? '4' : '6');
  for (const f of ['4', '6']) {
    const mine = tuples.filter((t) => family(t) === f);
    if (mine.length === 0) continue;
    p.line(
      mapLine(
        `@s${f}_0`,
        mine.map((t) => [t.key, sum(t.packets, t.bytes)]),
      ),
    );
    p.line(
      mapLine(
        `@t${f}_0`,
        mine.map((t) => [t.key, seenOf(units(t.firstNs), units(t.lastNs) - units(t.firstNs))]),
      ),
    );
  }
  p.finish();
  return d;
}

describe('bpftrace output', () => {
  it('turns a drain between its markers into one batch, and the maps printed at exit into a last one', () => {
    const d = new DrainedTuples();
    const p = new BpftraceOutputParser(d);
    const k = '1,8589934595';
    const k6 = `${1n << 32n},2,0,3,0`;
    // First seen at 1431 units of 2^20 ns, last 380 units later.
    const seen = seenOf(1431n, 380n);
    const lines = [
      '{"type": "attached_probes", "data": {"probes": 4}}',
      '{"type": "printf", "data": "udpwatch ready 4026531833 1000\\n"}',
      '',
      '{"type": "printf", "data": "udpwatch drain 2000000000\\n"}',
      '{"type": "map", "data": {"@refused": 3}}',
      mapLine('@s4_1', [[k, sum(5, 50)]]),
      mapLine('@t4_1', [[k, seen]]),
      mapLine('@s6_1', [[k6, sum(1, 9)]]),
      mapLine('@t6_1', [[k6, seen]]),
    ];
    const events = lines.map((l) => p.line(l)).filter((e) => e !== null);
    expect(events).toEqual([
      { kind: 'attached', probes: 4 },
      { kind: 'ready', netns: 4026531833, monoNs: 1000 },
    ]);
    // Nothing is handed over before the drain's end marker.
    expect(d.size).toBe(0);
    expect(p.line('{"type": "printf", "data": "udpwatch drained\\n"}')).toEqual({
      kind: 'drain',
      refused: 3,
      monoNs: 2_000_000_000,
      tuples: 2,
    });
    expect(rowsOf(d)).toEqual([
      { key: k, packets: 5, bytes: 50, firstNs: 1431 * 2 ** 20, lastNs: 1811 * 2 ** 20 },
      { key: k6, packets: 1, bytes: 9, firstNs: 1431 * 2 ** 20, lastNs: 1811 * 2 ** 20 },
    ]);
    expect(p.finish()).toBeNull();
    // At exit both buffers may be printed, unmarked: one tuple in both adds up,
    // and adds to what the previous drain left until it is taken.
    p.line(mapLine('@s4_0', [[k, sum(2, 2)]]));
    p.line(mapLine('@s4_1', [[k, sum(1, 4)]]));
    p.line(mapLine('@t4_0', [[k, seenOf(5n, 1n)]]));
    p.line(mapLine('@t4_1', [[k, seenOf(3n, 1n)]]));
    p.line('{"type": "map", "data": {"@drained": 9}}');
    expect(p.finish()).toMatchObject({ kind: 'drain', tuples: 1 });
    expect(rowsOf(d)[0]).toEqual({
      key: k,
      packets: 8,
      bytes: 56,
      firstNs: 3 * 2 ** 20,
      lastNs: 1811 * 2 ** 20,
    });
    d.clear();
    expect(d.size).toBe(0);
  });

  it("reports lost events and skips lines and entries that are not the program's without stopping", () => {
    const d = new DrainedTuples();
    const p = new BpftraceOutputParser(d);
    expect(p.line('{"type": "lost_events", "data": {"events": 12}}')).toEqual({
      kind: 'lost',
      events: 12,
    });
    expect(p.line('Attaching 4 probes...')).toMatchObject({ kind: 'skipped' });
    expect(p.line('[1,2]')).toMatchObject({ kind: 'skipped' });
    p.line('{"type": "printf", "data": "udpwatch drain 1\\n"}');
    // Entries that are not two or five unsigned words and an unsigned value are not tuples.
    const max = (1n << 64n) - 1n;
    p.line(
      mapLine('@s6_0', [
        ['k', '-4'],
        ['1,2,0,3,0', '"x"'],
        ['1,2,3', '5'],
        ['1,2,0,3,0,4', '5'],
        [`1,${max + 1n}`, '5'],
        ['1,2', `${max + 1n}`],
        ['1,2,', '5'],
        ['1,2,0,3,0', '7'],
      ]),
    );
    expect(p.badEntries).toBe(7);
    expect(p.line('{"type": "printf", "data": "udpwatch drained\\n"}')).toMatchObject({
      tuples: 1,
    });
    expect(rowsOf(d)).toEqual([{ key: '1,2,0,3,0', packets: 0, bytes: 7, firstNs: 0, lastNs: 0 }]);
  });

  it('unpacks sums up to 2^64 - 1 exactly (packets << 40 | bytes)', () => {
    // 16,000,000 datagrams of 65,000 bytes (1.04e12 bytes): a total near 2^64.
    const tuples: Tuple[] = [
      { key: '1,1', packets: 5, bytes: 50, firstNs: 0, lastNs: 0 },
      { key: '1,2', packets: 16_000_000, bytes: 1_040_000_000_000, firstNs: 0, lastNs: 0 },
      { key: '1,3', packets: 2 ** 24 - 1, bytes: 2 ** 40 - 1, firstNs: 0, lastNs: 0 },
      { key: '1,4', packets: 0, bytes: 0, firstNs: 0, lastNs: 0 },
    ];
    expect(rowsOf(drainOf(tuples)).map((t) => [t.key, t.packets, t.bytes])).toEqual(
      tuples.map((t) => [t.key, t.packets, t.bytes]),
    );
  });

  it('unpacks seen values (first << 20 | last minus first) exactly, past 2^53 too', () => {
    const d = new DrainedTuples();
    const p = new BpftraceOutputParser(d);
    // 200 days of uptime in units of 2^20 ns, last 4,000 units later: above 2^53.
    const first = 16_479_000_000n;
    expect((first << 20n) | 4_000n).toBeGreaterThan(1n << 53n);
    p.line(
      mapLine('@t4_0', [
        ['1,1', seenOf(7n, 2n)],
        ['1,2', seenOf(first, 4_000n)],
      ]),
    );
    p.finish();
    expect(rowsOf(d).map((t) => [t.firstNs, t.lastNs])).toEqual([
      [7 * 2 ** 20, 9 * 2 ** 20],
      [Number(first << 20n), Number((first + 4_000n) << 20n)],
    ]);
  });

  it('keeps every row of a drain larger than its storage, and one row per key across growth', () => {
    const d = new DrainedTuples();
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5_000; i++) {
        const key = i % 3 === 0 ? [1, 0, i, 7, 0, 8, 0, 9, 0, i] : [0, i, 7, i];
        const r = d.row(key, key.length);
        d.addSum(r, 1, i);
      }
    }
    expect(d.size).toBe(5_000);
    expect(rowsOf(d).every((t) => t.packets === 2)).toBe(true);
    expect(d.bytes(d.row([0, 4_999, 7, 4_999], 4))).toBe(2 * 4_999);
    d.clear();
    expect(d.size).toBe(0);
    expect(d.packets(d.row([0, 1, 7, 1], 4))).toBe(0);
  });

  it('maps kernel ns to epoch ms with the smallest offset seen (reading only ever adds delay)', () => {
    const c = new KernelClock();
    expect(c.toEpochMs(5e9, 123)).toBe(123);
    c.observe(1e9, 1_700_000_001_050); // read 50 ms late
    c.observe(2e9, 1_700_000_002_010); // read 10 ms late
    expect(c.toEpochMs(3e9, 0)).toBe(1_700_000_003_010);
  });
});

describe('tuple keys', () => {
  it('decodes IPv4 and IPv6 tuples of both directions', () => {
    expect(decodeTupleKey(key('in', '192.0.2.2', 41001, '192.0.2.1', 53))).toEqual({
      dir: 'in',
      srcIp: '192.0.2.2',
      srcPort: 41001,
      dstIp: '192.0.2.1',
      dstPort: 53,
    });
    expect(
      decodeTupleKey(key('out', '2001:db8::1', 443, '2001:db8:0:0:0:0:abcd:2', 65535)),
    ).toEqual({
      dir: 'out',
      srcIp: '2001:db8::1',
      srcPort: 443,
      dstIp: '2001:db8::abcd:2',
      dstPort: 65535,
    });
  });

  it('rejects keys the program cannot have printed', () => {
    for (const bad of [
      '',
      '1,2,3',
      `${1n << 32n},2,0,3,x`,
      `${(1n << 35n) | (1n << 32n)},1,0,1,0`,
      `${(3n << 33n) | (1n << 32n)},1,0,1,0`,
      `${1n << 35n},1`,
      // The family bit and the key's shape disagree.
      '0,1,5,1,0',
      `${1n << 32n},1`,
      `0,${1n << 64n}`,
    ]) {
      expect(decodeTupleKey(bad), bad).toBeNull();
    }
  });

  it('takes every u64 up to 2^64 - 1 and no number past it or longer than 20 digits', () => {
    const max = (1n << 64n) - 1n;
    expect(decodeTupleKey(`0,${max}`)).toEqual({
      dir: 'in',
      srcIp: '255.255.255.255',
      srcPort: 0,
      dstIp: '255.255.255.255',
      dstPort: 0,
    });
    // Leading zeros are digits like any other: 20 is the most a u64 prints with.
    expect(decodeTupleKey(`0,${String(1n << 32n).padStart(20, '0')}`)?.srcIp).toBe(
      LE ? '1.0.0.0' : '0.0.0.1',
    );
    for (const bad of [`0,${max + 1n}`, `0,0${max}`, `0,${'9'.repeat(20)}`, '0,-1', '0,1 ']) {
      expect(decodeTupleKey(bad), bad).toBeNull();
    }
  });
});

/** An address of random bytes, written out in full (IPv6 as eight hex words). */
const addressOf = (bytes: number[]): string =>
  bytes.length === 4
    ? bytes.join('.')
    : Array.from({ length: 8 }, (_, i) =>
        ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16),
      ).join(':');

test.prop([
  fc.constantFrom('in' as const, 'out' as const, 'lo' as const),
  fc.constantFrom(4, 16),
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.integer({ min: 0, max: 65_535 }),
  fc.integer({ min: 0, max: 65_535 }),
])(
  'decodes any tuple the program can print back to its addresses and ports',
  (dir, size, bytes, sport, dport) => {
    const src = addressOf([...bytes.subarray(0, size)]);
    const dst = addressOf([...bytes.subarray(16, 16 + size)]);
    expect(decodeTupleKey(key(dir, src, sport, dst, dport))).toEqual({
      dir,
      srcIp: normalizeIp(src),
      srcPort: sport,
      dstIp: normalizeIp(dst),
      dstPort: dport,
    });
  },
);

it('names more distinct IPv4 peers than it remembers, each rightly, in any order', () => {
  // Past the memory of IPv4 texts (65,536): it starts over, and every name stays right.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 70_000; i += round === 0 ? 1 : 7) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      const t = decodeTupleKey(key('in', ip, 1024 + (i % 60_000), '192.0.2.1', 53));
      expect(t?.srcIp).toBe(ip);
      expect(t?.srcPort).toBe(1024 + (i % 60_000));
    }
  }
});

describe('direction: tuples to flows of local sockets', () => {
  const local = new Set(['192.0.2.1', '2001:db8::1']);
  const tuple = (k: string, packets: number, bytes: number, lastNs = 2e9): Tuple => ({
    key: k,
    packets,
    bytes,
    firstNs: 1e9,
    lastNs,
  });
  // Times reach the agent in units of 2^20 ns: to the ms here.
  const toEpochMs = (ns: number) => Math.round(1_700_000_000_000 + ns / 1e6);

  it('a datagram to a local socket is its client packet in, one sent from it is out; unowned ports are no clients', () => {
    const index = new SocketIndex([listener('0.0.0.0', 53), listener('::', 53)], local);
    const stats = { unownedPackets: 0, badKeys: 0 };
    const out = tuplesToObservations(
      drainOf([
        tuple(key('in', '198.51.100.7', 40000, '192.0.2.1', 53), 3, 90),
        tuple(key('out', '192.0.2.1', 53, '198.51.100.7', 40000), 2, 400, 3e9),
        tuple(key('in', '2001:db8::9', 40001, '2001:db8::1', 53), 1, 10),
        // No socket on 9999; and a forwarded packet to an address that is not ours.
        tuple(key('in', '198.51.100.7', 40000, '192.0.2.1', 9999), 4, 40),
        tuple(key('in', '198.51.100.7', 40000, '203.0.113.5', 53), 6, 60),
        // A key the program cannot print (a direction bit past the three it has).
        tuple(`${1n << 35n},1`, 1, 1),
      ]),
      index,
      { sampleRate: 1, toEpochMs, stats },
    );
    expect(out).toEqual([
      {
        source: 'ebpf',
        localIp: '0.0.0.0',
        localPort: 53,
        remoteIp: '198.51.100.7',
        remotePort: 40000,
        pktsIn: 3,
        bytesIn: 90,
        pktsOut: 2,
        bytesOut: 400,
        firstSeen: 1_700_000_001_000,
        lastSeen: 1_700_000_003_000,
        pid: 7,
        process: 'named',
      },
      expect.objectContaining({ localIp: '::', remoteIp: '2001:db8::9', pktsIn: 1, pktsOut: 0 }),
    ]);
    expect(stats).toEqual({ unownedPackets: 10, badKeys: 1 });
  });

  it('peers that differ only in port, or only in address, are flows of their own; one peer is one flow', () => {
    const index = new SocketIndex([listener('0.0.0.0', 53)], local);
    const peers: [string, number][] = [
      ['198.51.100.7', 40000],
      ['198.51.100.7', 40001],
      ['198.51.100.8', 40000],
      ['203.0.113.7', 40000],
    ];
    const tuples = peers.flatMap(([ip, p], i) => [
      tuple(key('in', ip, p, '192.0.2.1', 53), i + 1, 10 * (i + 1)),
      tuple(key('out', '192.0.2.1', 53, ip, p), 1, 5),
    ]);
    const out = tuplesToObservations(drainOf(tuples), index, { sampleRate: 1, toEpochMs });
    expect(out.map((o) => [o.remoteIp, o.remotePort, o.pktsIn, o.bytesIn, o.pktsOut])).toEqual(
      peers.map(([ip, p], i) => [ip, p, i + 1, 10 * (i + 1), 1]),
    );
  });

  it("a loopback datagram, counted once in the kernel, is the sender socket's packet out and the receiver socket's packet in", () => {
    const stats = { unownedPackets: 0, badKeys: 0 };
    const out = tuplesToObservations(
      drainOf([
        // A client socket no listener owns (a sender in another process, port 40000) to the server.
        tuple(key('lo', '127.0.0.1', 40000, '127.0.0.1', 53), 3, 90),
        // The server's answers.
        tuple(key('lo', '127.0.0.1', 53, '127.0.0.1', 40000), 2, 40, 3e9),
        // Both ends local sockets: a client bound on port 41000 (listed) to the server over IPv6.
        tuple(key('lo', '::1', 41000, '::1', 53), 1, 7),
      ]),
      new SocketIndex(
        [listener('127.0.0.1', 53), listener('::', 53), listener('::1', 41000)],
        new Set(['::1']),
      ),
      { sampleRate: 1, toEpochMs, stats },
    );
    expect(
      out.map((o) => [
        o.localIp,
        o.localPort,
        o.remoteIp,
        o.remotePort,
        o.pktsIn,
        o.bytesIn,
        o.pktsOut,
        o.bytesOut,
      ]),
    ).toEqual([
      ['127.0.0.1', 53, '127.0.0.1', 40000, 3, 90, 2, 40],
      ['::', 53, '::1', 41000, 1, 7, 0, 0],
      ['::1', 41000, '::1', 53, 0, 0, 1, 7],
    ]);
    // The unowned client end of the first two tuples, each datagram once.
    expect(stats).toEqual({ unownedPackets: 5, badKeys: 0 });
  });

  it("a connected socket's own peer goes to it, other peers to the listener; sampling scales and says so", () => {
    const index = new SocketIndex([listener('0.0.0.0', 6000)], local, [
      {
        localIp: '192.0.2.1',
        localPort: 6000,
        remoteIp: '198.51.100.2',
        remotePort: 43001,
        pid: 8,
      },
    ]);
    const out = tuplesToObservations(
      drainOf([
        tuple(key('in', '198.51.100.2', 43001, '192.0.2.1', 6000), 2, 20),
        tuple(key('in', '198.51.100.2', 43002, '192.0.2.1', 6000), 1, 5),
      ]),
      index,
      { sampleRate: 10, toEpochMs },
    );
    expect(
      out.map((o) => [o.localIp, o.remotePort, o.pid, o.pktsIn, o.bytesIn, o.sampleRate]),
    ).toEqual([
      ['192.0.2.1', 43001, 8, 20, 200, 10],
      ['0.0.0.0', 43002, 7, 10, 50, 10],
    ]);
  });
});

describe('ownership: one source counts each flow', () => {
  const T = 1_700_000_000_000;
  const o = (
    source: PeerObservation['source'],
    extra: Partial<PeerObservation> = {},
  ): PeerObservation => ({
    source,
    localIp: '0.0.0.0',
    localPort: 53,
    remoteIp: '198.51.100.7',
    remotePort: 40000,
    pktsIn: 5,
    bytesIn: 50,
    pktsOut: 5,
    bytesOut: 50,
    lastSeen: T,
    ...extra,
  });
  const table = () => new FlowTable({ serviceFor: createServiceNamer([], 300), maxFlows: 100 });

  it('with eBPF live, eBPF counts and conntrack only adds NAT info; without it, conntrack counts', () => {
    const t = table();
    t.setEbpfLive(true);
    t.ingest([o('conntrack', { natFromIp: '203.0.113.9', natFromPort: 1 }), o('ebpf')]);
    expect(t.drain(T)).toEqual([
      expect.objectContaining({
        source: 'ebpf',
        pktsIn: 5,
        bytesOut: 50,
        natFromIp: '203.0.113.9',
      }),
    ]);
    expect(t.stats().shadowed).toBe(1);
    t.setEbpfLive(false);
    t.ingest([o('conntrack', { lastSeen: T + 1 })]);
    expect(t.drain(T + 1)).toEqual([expect.objectContaining({ pktsIn: 5 })]);
  });

  it('conntrack keeps counting flows translated on this host to reach the socket, which eBPF cannot see', () => {
    const t = table();
    t.setEbpfLive(true);
    t.ingest([o('conntrack', { localNat: true, remotePort: 40009 })]);
    expect(t.drain(T)).toEqual([
      expect.objectContaining({ remotePort: 40009, pktsIn: 5, source: 'conntrack' }),
    ]);
  });

  it('the hook owns hooked sockets: eBPF and conntrack counters for them are ignored', () => {
    const t = table();
    t.setEbpfLive(true);
    t.ingest([o('hook', { pktsIn: 2 }), o('ebpf'), o('conntrack'), o('ebpf', { localPort: 54 })]);
    const d = t.drain(T);
    expect(d.map((x) => [x.localPort, x.source, x.pktsIn])).toEqual([
      [53, 'hook', 2],
      [54, 'ebpf', 5],
    ]);
  });

  it('a sampled source keeps its scaled counters and the flow says its sample rate', () => {
    const t = table();
    t.ingest([o('ebpf', { pktsIn: 40, sampleRate: 8 })]);
    expect(t.drain(T)).toEqual([expect.objectContaining({ pktsIn: 40, sampleRate: 8 })]);
  });
});

describe('missing requirements', () => {
  const ok: EbpfFacts = {
    bpftraceVersion: 'bpftrace v0.17.0',
    bpftraceCommand: 'bpftrace',
    euid: 0,
    capEff: (1n << BigInt(CAP.BPF)) | (1n << BigInt(CAP.PERFMON)),
    tracefs: true,
    btf: true,
  };

  it('says nothing when everything is there, and one precise fix for each gap', () => {
    expect(ebpfProblem(ok)).toBeNull();
    expect(ebpfProblem({ ...ok, bpftraceVersion: null })).toMatch(
      /no bpftrace command on PATH: install bpftrace .*apt-get install bpftrace/,
    );
    expect(ebpfProblem({ ...ok, euid: 998 })).toMatch(
      /bpftrace v0\.17\.0 runs only as uid 0 and the agent runs as uid 998: run the agent as root/,
    );
    expect(ebpfProblem({ ...ok, capEff: 1n << BigInt(CAP.BPF) })).toMatch(
      /missing capability CAP_PERFMON .*CapabilityBoundingSet/,
    );
    expect(ebpfProblem({ ...ok, capEff: 0n })).toMatch(/missing capability CAP_BPF, CAP_PERFMON /);
    // Kernels before 5.8 know only CAP_SYS_ADMIN, which covers both.
    expect(ebpfProblem({ ...ok, capEff: 1n << BigInt(CAP.SYS_ADMIN) })).toBeNull();
    expect(ebpfProblem({ ...ok, btf: false })).toMatch(
      /no kernel BTF at \/sys\/kernel\/btf\/vmlinux .*CONFIG_DEBUG_INFO_BTF/,
    );
    expect(
      ebpfProblem({ ...ok, tracefs: false, tracefsMountError: 'mount: permission denied' }),
    ).toBe(
      'tracefs is not mounted at /sys/kernel/tracing and mounting it failed (mount: permission denied): run `mount -t tracefs nodev /sys/kernel/tracing` (to keep it: add `tracefs /sys/kernel/tracing tracefs defaults 0 0` to /etc/fstab)',
    );
  });
});
