import { gzipSync } from 'node:zlib';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  decodeRecord,
  encodeRecords,
  MAX_RECORD_BYTES,
  type UnsequencedLine,
} from '../../../contract/codec.js';
import { FLOW_SOURCES } from '../../../contract/wire.js';

const T0 = 1_764_000_000_000;

function flow(i: number, overrides: Record<string, unknown> = {}): UnsequencedLine {
  return {
    v: 1,
    type: 'flow',
    agentId: 'agent-a',
    host: 'host-1',
    service: 'dns',
    source: 'hook',
    localIp: '192.0.2.10',
    localPort: 53,
    remoteIp: '198.51.100.7',
    remotePort: 40_000 + (i % 20_000),
    firstSeen: T0 + i,
    lastSeen: T0 + i + 10,
    pktsIn: i,
    bytesIn: i * 60,
    pktsOut: 1,
    bytesOut: 80,
    sampleRate: 1,
    ...overrides,
  } as UnsequencedLine;
}

function counter(start = 1) {
  let s = start;
  return () => s++;
}

describe('encodeRecords / decodeRecord', () => {
  it('round-trips flow and heartbeat lines, stamping one seq per record', () => {
    const lines: UnsequencedLine[] = [
      flow(1),
      flow(2, { remoteIp: '::ffff:203.0.113.9', pid: 42, process: 'named' }),
      {
        v: 1,
        type: 'heartbeat',
        agentId: 'agent-a',
        host: 'host-1',
        at: T0,
        flows: 2,
        dropped: 0,
        spooled: 3,
      },
    ];
    const records = encodeRecords(lines, { nextSeq: counter(7) });
    expect(records).toHaveLength(1);
    expect(records[0]!.seq).toBe(7);
    const decoded = decodeRecord(records[0]!.data);
    expect(decoded.gzip).toBe(true);
    expect(decoded.errors).toEqual([]);
    expect(decoded.lines).toHaveLength(3);
    expect(decoded.lines.every((l) => l.seq === 7)).toBe(true);
    // IPv4-mapped IPv6 is folded to IPv4 on decode.
    expect(decoded.lines[1]).toMatchObject({ remoteIp: '203.0.113.9', pid: 42, process: 'named' });
  });

  it('splits into records under the size limit, in order', () => {
    const lines = Array.from({ length: 3000 }, (_, i) => flow(i));
    const records = encodeRecords(lines, {
      gzip: false,
      maxRecordBytes: 64 * 1024,
      nextSeq: counter(),
    });
    expect(records.length).toBeGreaterThan(5);
    const seen: number[] = [];
    for (const r of records) {
      expect(r.data.length).toBeLessThanOrEqual(64 * 1024);
      const d = decodeRecord(r.data);
      expect(d.errors).toEqual([]);
      expect(d.lines).toHaveLength(r.lines);
      for (const l of d.lines) if (l.type === 'flow') seen.push(l.pktsIn);
    }
    expect(seen).toEqual(lines.map((_, i) => i));
    expect(new Set(records.map((r) => r.seq)).size).toBe(records.length);
  });

  it('keeps gzip records under the limit even when lines do not compress', () => {
    // Random process names defeat compression.
    const lines = Array.from({ length: 400 }, (_, i) =>
      flow(i, {
        process: Buffer.from(Array.from({ length: 180 }, () => Math.random() * 256)).toString(
          'base64',
        ),
      }),
    );
    const records = encodeRecords(lines, { maxRecordBytes: 16 * 1024, nextSeq: counter() });
    const total = records.reduce((n, r) => n + r.lines, 0);
    expect(total).toBe(400);
    for (const r of records) expect(r.data.length).toBeLessThanOrEqual(16 * 1024);
  });

  it('rejects a bad line alone, with its line number and field', () => {
    const good = encodeRecords([flow(1), flow(2)], {
      gzip: false,
      nextSeq: counter(5),
    })[0]!.data.toString();
    const [a, b] = good.trim().split('\n');
    const badIp = a!.replace('"198.51.100.7"', '"zz:01"');
    const text = [a, 'not json', badIp, '{"v":2,"type":"flow"}', b, ''].join('\n');
    const d = decodeRecord(Buffer.from(text));
    expect(d.lines.map((l) => (l.type === 'flow' ? l.pktsIn : -1))).toEqual([1, 2]);
    expect(d.errors).toHaveLength(3);
    expect(d.errors[0]).toMatchObject({ line: 2 });
    expect(d.errors[0]!.reason).toMatch(/not JSON/);
    expect(d.errors[1]).toMatchObject({ line: 3, field: 'remoteIp' });
    expect(d.errors[1]!.reason).toMatch(/zz:01/);
    expect(d.errors[2]).toMatchObject({ line: 4, field: 'v' });
  });

  it('rejects lines whose agentId or seq differ from the record', () => {
    const one = encodeRecords([flow(1)], { gzip: false, nextSeq: counter(1) })[0]!.data.toString();
    const two = encodeRecords([flow(2)], { gzip: false, nextSeq: counter(2) })[0]!.data.toString();
    const d = decodeRecord(Buffer.from(one + two));
    expect(d.lines).toHaveLength(1);
    expect(d.errors).toEqual([expect.objectContaining({ line: 2, field: 'seq' })]);
  });

  it('reports a corrupt gzip record as a whole, without throwing', () => {
    const data = gzipSync('{"v":1}\n');
    const corrupt = Buffer.concat([data.subarray(0, 12), Buffer.alloc(8, 0xff)]);
    const d = decodeRecord(corrupt);
    expect(d.lines).toEqual([]);
    expect(d.errors[0]).toMatchObject({ line: 0 });
    expect(d.errors[0]!.reason).toMatch(/gzip/);
  });

  it('refuses to inflate a gzip bomb', () => {
    const bomb = gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(MAX_RECORD_BYTES);
    const d = decodeRecord(bomb);
    expect(d.lines).toEqual([]);
    expect(d.errors[0]!.line).toBe(0);
  });

  it('rejects a flow whose lastSeen is before firstSeen', () => {
    const text = encodeRecords([flow(1, { firstSeen: T0 + 100, lastSeen: T0 })], {
      gzip: false,
      nextSeq: counter(),
    })[0]!.data;
    const d = decodeRecord(text);
    expect(d.errors[0]).toMatchObject({ line: 1, field: 'lastSeen' });
  });
});

const arbFlow = fc.record({
  v: fc.constant(1 as const),
  type: fc.constant('flow' as const),
  agentId: fc.constant('agent-p'),
  host: fc.stringMatching(/^[a-z][a-z0-9.-]{0,30}$/),
  service: fc.stringMatching(/^[a-z][a-z0-9:_-]{0,20}$/),
  source: fc.constantFrom(...FLOW_SOURCES),
  localIp: fc.oneof(fc.ipV4(), fc.constant('2001:db8::1')),
  localPort: fc.integer({ min: 0, max: 65_535 }),
  remoteIp: fc.oneof(fc.ipV4(), fc.constantFrom('2001:db8::7', '::1')),
  remotePort: fc.integer({ min: 0, max: 65_535 }),
  firstSeen: fc.integer({ min: T0, max: T0 + 1_000_000 }),
  lastSeen: fc.constant(T0 + 1_000_000),
  pktsIn: fc.nat(),
  bytesIn: fc.nat(),
  pktsOut: fc.nat(),
  bytesOut: fc.nat(),
  sampleRate: fc.integer({ min: 1, max: 100 }),
});

describe('codec properties', () => {
  test.prop([
    fc.array(arbFlow, { maxLength: 200 }),
    fc.boolean(),
    fc.integer({ min: 2048, max: 200_000 }),
  ])(
    'every line comes back exactly once, in order, and no record exceeds the limit',
    (lines, gzip, maxRecordBytes) => {
      const records = encodeRecords(lines, { gzip, maxRecordBytes, nextSeq: counter() });
      const back = records.flatMap((r) => {
        expect(r.data.length).toBeLessThanOrEqual(maxRecordBytes);
        const d = decodeRecord(r.data);
        expect(d.errors).toEqual([]);
        expect(d.gzip).toBe(gzip);
        return d.lines.map(({ seq: _seq, ...rest }) => rest);
      });
      expect(back).toEqual(lines);
    },
  );

  test.prop([fc.uint8Array({ maxLength: 2000 })])(
    'random bytes never throw out of the decoder',
    (bytes) => {
      const d = decodeRecord(bytes);
      expect(Array.isArray(d.lines)).toBe(true);
    },
  );

  test.prop([
    fc.array(arbFlow, { minLength: 1, maxLength: 20 }),
    fc.array(fc.nat(), { maxLength: 5 }),
    fc.string(),
  ])('garbage spliced between lines never sinks good neighbours', (lines, positions, junk) => {
    const text = encodeRecords(lines, { gzip: false, nextSeq: counter() })[0]!.data.toString();
    const rows = text.trim().split('\n');
    const spliced = [...rows];
    for (const p of positions)
      spliced.splice(p % (spliced.length + 1), 0, `#${junk.replace(/\n/g, '')}`);
    const d = decodeRecord(Buffer.from(spliced.join('\n')));
    expect(d.lines).toHaveLength(lines.length);
    expect(d.errors).toHaveLength(positions.length);
    // The gzip path gives the same answer.
    const dz = decodeRecord(gzipSync(spliced.join('\n')));
    expect(dz.lines).toHaveLength(lines.length);
  });
});
