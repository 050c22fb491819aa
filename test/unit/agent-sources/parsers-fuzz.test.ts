/**
 * Fuzzed /proc and conntrack text: random bytes and mutated real lines never
 * make a parser throw, every line is either parsed or reported with its line
 * number, and good lines beside bad ones still parse.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { parseConntrack } from '../../../agent/nf-conntrack.js';
import { parseProcNetSnmp, parseProcNetSnmp6 } from '../../../agent/proc-net-snmp.js';
import { parseProcNetUdp } from '../../../agent/proc-net-udp.js';
import { fullIpv6, kernelUdpLine, UDP_HEADER, UDP6_HEADER } from './kernel-text.js';

const NUM_RUNS = { numRuns: 300 };

/** Text without newlines, biased towards the characters these formats use. */
const noNewline = fc.string({
  unit: fc.oneof(
    fc.constantFrom(' ', ':', '=', '[', ']', '0', 'F', 'f', 'x', '.', '-', '\t', '\0', 'é'),
    fc.integer({ min: 0, max: 0x2ff }).map((c) => (c === 10 ? ' ' : String.fromCharCode(c))),
  ),
  maxLength: 12,
});

/** A mutation of one line: cut a piece, insert junk, or swap a field for junk. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('cut' as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 20 }),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: noNewline }),
  fc.record({ kind: fc.constant('field' as const), at: fc.nat(), text: noNewline }),
);

type Mutation =
  | { kind: 'cut'; at: number; len: number }
  | { kind: 'insert' | 'field'; at: number; text: string };

function mutate(line: string, m: Mutation): string {
  const at = m.at % (line.length + 1);
  if (m.kind === 'cut') return line.slice(0, at) + line.slice(at + m.len);
  if (m.kind === 'insert') return line.slice(0, at) + m.text + line.slice(at);
  const fields = line.split(' ');
  fields[m.at % fields.length] = m.text;
  return fields.join(' ').replace(/\n/g, ' ');
}

const udpSocket = (family: 4 | 6) =>
  fc.record({
    slot: fc.nat({ max: 9999 }),
    localIp: family === 4 ? fc.ipV4() : fc.ipV6(),
    localPort: fc.integer({ min: 0, max: 65535 }),
    remoteIp: family === 4 ? fc.ipV4() : fc.ipV6(),
    remotePort: fc.integer({ min: 0, max: 65535 }),
    state: fc.constantFrom(1, 7),
    txQueue: fc.nat(),
    rxQueue: fc.nat(),
    uid: fc.nat(),
    inode: fc.constant(0),
    refs: fc.nat({ max: 9 }),
    drops: fc.nat(),
  });

/** Lines the parsers skip without a word: blank ones and headers. */
const isSilent = (line: string) => line.trim() === '' || line.trimStart().startsWith('sl ');

describe('parsers never throw on random text', () => {
  test.prop([fc.string({ maxLength: 400 })], NUM_RUNS)('any string', (text) => {
    for (const family of [4, 6] as const) {
      const r = parseProcNetUdp(text, { family });
      expect(Array.isArray(r.sockets) && Array.isArray(r.errors)).toBe(true);
    }
    expect(() => parseProcNetSnmp(text)).not.toThrow();
    expect(() => parseProcNetSnmp6(text)).not.toThrow();
    expect(() => parseConntrack(text, { protocol: null })).not.toThrow();
  });
});

describe.each([4, 6] as const)('/proc/net/udp%s: mutated lines among good ones', (family) => {
  test.prop(
    [
      fc.array(fc.tuple(fc.boolean(), mutation), { minLength: 1, maxLength: 12 }),
      fc.array(udpSocket(family), { minLength: 12, maxLength: 12 }),
    ],
    NUM_RUNS,
  )('every line is parsed or reported, good lines survive', (plan, socks) => {
    const lines = [family === 4 ? UDP_HEADER : UDP6_HEADER];
    const goodInodes = new Map<number, number>(); // line number -> inode
    plan.forEach(([bad, m], i) => {
      const inode = 1000 + i;
      const line = kernelUdpLine({ ...socks[i]!, inode });
      if (bad) lines.push(mutate(line, m));
      else {
        lines.push(line);
        goodInodes.set(lines.length, inode);
      }
    });
    const { sockets, errors } = parseProcNetUdp(lines.join('\n'), { family });
    const reported = lines.slice(1).filter((l) => !isSilent(l)).length;
    expect(sockets.length + errors.length).toBe(reported);
    const parsedInodes = new Set(sockets.map((s) => s.inode));
    for (const inode of goodInodes.values()) expect(parsedInodes.has(inode)).toBe(true);
    for (const e of errors) {
      expect(goodInodes.has(e.line)).toBe(false);
      expect(e.line).toBeGreaterThan(1);
      expect(e.line).toBeLessThanOrEqual(lines.length);
      expect(e.reason.length).toBeGreaterThan(0);
    }
  });
});

describe('nf_conntrack: mutated lines among good ones', () => {
  const goodLine = (i: number, v6: boolean) => {
    const c = v6 ? fullIpv6(`2001:db8::${i + 1}`) : `192.0.2.${i + 1}`;
    const s = v6 ? fullIpv6('2001:db8::ffff') : '203.0.113.2';
    return `${v6 ? 'ipv6     10' : 'ipv4     2'} udp      17 ${i} src=${c} dst=${s} sport=${40000 + i} dport=53 packets=${i + 1} bytes=${(i + 1) * 60} [UNREPLIED] src=${s} dst=${c} sport=53 dport=${40000 + i} packets=0 bytes=0 mark=0 zone=0 use=2`;
  };

  test.prop(
    [fc.array(fc.tuple(fc.boolean(), fc.boolean(), mutation), { minLength: 1, maxLength: 12 })],
    NUM_RUNS,
  )('every line is parsed, skipped as another protocol, or reported', (plan) => {
    const lines: string[] = [];
    const good = new Map<number, number>(); // line number -> sport
    plan.forEach(([bad, v6, m], i) => {
      const line = goodLine(i, v6);
      if (bad) lines.push(mutate(line, m));
      else {
        lines.push(line);
        good.set(lines.length, 40000 + i);
      }
    });
    const { entries, errors, skipped } = parseConntrack(lines.join('\n'));
    expect(entries.length + errors.length + skipped).toBe(
      lines.filter((l) => l.trim() !== '').length,
    );
    const sports = new Set(entries.map((e) => e.orig.sport));
    for (const sport of good.values()) expect(sports.has(sport)).toBe(true);
    for (const e of errors) {
      expect(good.has(e.line)).toBe(false);
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.line).toBeLessThanOrEqual(lines.length);
    }
  });
});

describe('snmp: mutated value lines', () => {
  const HEADER = 'Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors';
  test.prop([mutation, fc.array(fc.nat(), { minLength: 6, maxLength: 6 })], NUM_RUNS)(
    'a bad value line is reported at line 2 (or its header at 1), a good one parses exactly',
    (m, values) => {
      const good = `Udp: ${values.join(' ')}`;
      const line = mutate(good, m);
      const r = parseProcNetSnmp(`${HEADER}\n${line}\n`);
      if (r.errors.length === 0) {
        expect(r.udp).toBeDefined();
        for (const v of Object.values(r.udp!)) expect(Number.isSafeInteger(v)).toBe(true);
      } else {
        // A value line that lost its `Udp:` prefix leaves the header alone on line 1.
        for (const e of r.errors) expect(e.line).toBe(line.startsWith('Udp:') ? 2 : 1);
      }
      const clean = parseProcNetSnmp(`${HEADER}\n${good}\n`);
      expect(clean.udp?.rcvbufErrors).toBe(values[4]);
      const six = parseProcNetSnmp6(
        `Udp6InErrors ${values[0]}\n${mutate(`Udp6RcvbufErrors ${values[1]}`, m)}\n`,
      );
      expect(six.udp6?.inErrors).toBe(values[0]);
      for (const e of six.errors) expect(e.line).toBe(2);
    },
  );
});
