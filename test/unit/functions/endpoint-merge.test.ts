/**
 * Merging stored parts into endpoint and IP views: sums, min/max times in
 * epoch ms, unions, newest-first order with a stable tiebreak, the active
 * filter, pages that resume after a position, and roll-up times.
 */
import { describe, expect, it } from 'vitest';
import type { Block, BlockEndpoint } from '../../../contract/block.js';
import {
  activeNewestFirst,
  countActive,
  mergeParts,
  pageAfter,
  windowSince,
} from '../../../functions/store/endpoint-merge.js';
import { endpointTimes, type StoredPart } from '../../../functions/store/stored-part.js';

const M = 30_000_000; // an epoch minute

function ep(over: Partial<BlockEndpoint> & Pick<BlockEndpoint, 'ip' | 'port'>): BlockEndpoint {
  return {
    localIp: '192.0.2.1',
    localPort: 53,
    pktsIn: 1,
    bytesIn: 10,
    pktsOut: 1,
    bytesOut: 20,
    firstSecond: 0,
    lastSecond: 0,
    source: 'hook',
    sampleRate: 1,
    ...over,
  };
}

function part(over: Partial<Block> & Pick<Block, 'endpoints'>): StoredPart {
  return {
    block: {
      agentId: 'a1',
      host: 'h1',
      service: 'dns',
      minute: M,
      seq: 1,
      part: 0,
      parts: 1,
      ...over,
    },
  };
}

describe('mergeParts', () => {
  it('sums counters and takes min first / max last seen across parts, agents and minutes', () => {
    const parts = [
      part({
        endpoints: [ep({ ip: '198.51.100.1', port: 1000, firstSecond: 10, lastSecond: 20 })],
      }),
      part({
        agentId: 'a2',
        host: 'h2',
        minute: M + 1,
        endpoints: [
          ep({
            ip: '198.51.100.1',
            port: 1000,
            pktsIn: 5,
            bytesIn: 500,
            pktsOut: 0,
            bytesOut: 0,
            firstSecond: 3,
            lastSecond: 7,
            source: 'conntrack',
            natFromIp: '203.0.113.9',
            natFromPort: 4000,
            owner: { pid: 42, process: 'named' },
          }),
        ],
      }),
      part({
        minute: M + 2,
        endpoints: [
          ep({ ip: '198.51.100.1', port: 1000, firstSecond: 59, lastSecond: 59, localPort: 54 }),
        ],
      }),
    ];
    const [e, ...rest] = mergeParts(parts, { view: 'endpoint' });
    expect(rest).toEqual([]);
    expect(e).toMatchObject({
      service: 'dns',
      ip: '198.51.100.1',
      port: 1000,
      pktsIn: 7,
      bytesIn: 520,
      pktsOut: 2,
      bytesOut: 40,
      firstSeen: M * 60_000 + 10_000,
      lastSeen: (M + 2) * 60_000 + 59_000,
      hosts: ['h1', 'h2'],
      sources: ['conntrack', 'hook'],
      natFrom: ['203.0.113.9:4000'],
      owners: [{ pid: 42, process: 'named' }],
    });
  });

  it('keys endpoints by (service, ip, port) and IPs by (service, ip); filters on one IP', () => {
    const parts = [
      part({
        endpoints: [
          ep({ ip: '198.51.100.1', port: 1 }),
          ep({ ip: '198.51.100.1', port: 2 }),
          ep({ ip: '198.51.100.2', port: 1 }),
        ],
      }),
      part({ service: 'ntp', endpoints: [ep({ ip: '198.51.100.1', port: 1 })] }),
    ];
    expect(mergeParts(parts, { view: 'endpoint' })).toHaveLength(4);
    const ips = mergeParts(parts, { view: 'ip' });
    expect(ips.map((e) => `${e.service} ${e.ip} ${e.pktsIn}`).sort()).toEqual([
      'dns 198.51.100.1 2',
      'dns 198.51.100.2 1',
      'ntp 198.51.100.1 1',
    ]);
    expect(ips.every((e) => e.port === undefined)).toBe(true);
    const one = mergeParts(parts, { view: 'ip', ip: '198.51.100.1' });
    expect(one.map((e) => e.service).sort()).toEqual(['dns', 'ntp']);
  });

  it('finds a client by its pre-NAT address too, under the address the daemon saw', () => {
    const parts = [
      part({
        endpoints: [
          ep({ ip: '203.0.113.99', port: 1, natFromIp: '192.0.2.2', natFromPort: 40001 }),
          ep({ ip: '203.0.113.99', port: 2, natFromIp: '192.0.2.3', natFromPort: 40001 }),
          ep({ ip: '192.0.2.2', port: 3 }),
        ],
      }),
    ];
    const found = mergeParts(parts, { view: 'ip', ip: '192.0.2.2' });
    expect(found.map((e) => [e.ip, e.pktsIn, e.natFrom])).toEqual([
      ['203.0.113.99', 1, ['192.0.2.2:40001']],
      ['192.0.2.2', 1, []],
    ]);
    // The other client behind the same translated address is not this one.
    expect(mergeParts(parts, { view: 'ip', ip: '192.0.2.3' })).toHaveLength(1);
  });

  it('lists IPv6 pre-NAT addresses in brackets', () => {
    const [e] = mergeParts(
      [
        part({
          endpoints: [ep({ ip: '2001:db8::1', port: 9, natFromIp: '2001:db8::9', natFromPort: 7 })],
        }),
      ],
      { view: 'endpoint' },
    );
    expect(e!.natFrom).toEqual(['[2001:db8::9]:7']);
  });
});

describe('order, activity and pages', () => {
  const entries = mergeParts(
    [
      part({
        endpoints: Array.from({ length: 12 }, (_, i) =>
          ep({
            ip: `198.51.100.${(i % 3) + 1}`,
            port: 100 + i,
            lastSecond: Math.floor(i / 2) * 10,
          }),
        ),
      }),
    ],
    { view: 'endpoint' },
  );

  it('orders newest first, ties by key, and keeps only lastSeen >= since', () => {
    const since = M * 60_000 + 20_000;
    const sorted = activeNewestFirst(entries, since);
    expect(sorted.every((e) => e.lastSeen >= since)).toBe(true);
    expect(sorted).toHaveLength(entries.filter((e) => e.lastSeen >= since).length);
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1]!;
      const b = sorted[i]!;
      expect(a.lastSeen > b.lastSeen || (a.lastSeen === b.lastSeen && a.key < b.key)).toBe(true);
    }
    // The boundary second itself is active.
    expect(sorted.some((e) => e.lastSeen === since)).toBe(true);
  });

  it('pages resume right after the last entry, each entry once, in order', () => {
    const sorted = activeNewestFirst(entries, 0);
    const seen: string[] = [];
    let after = null;
    for (let i = 0; i < 20; i++) {
      const { page, next } = pageAfter(sorted, after, 5);
      seen.push(...page.map((e) => e.key));
      if (!next) break;
      after = next;
    }
    expect(seen).toEqual(sorted.map((e) => e.key));
    // A position whose entry vanished (or changed) still resumes at the right place.
    const gone = { lastSeen: sorted[3]!.lastSeen, key: `${sorted[3]!.key}x` };
    expect(pageAfter(sorted, gone, 100).page[0]).toBe(sorted[4]);
  });

  it('counts endpoints and distinct IPs that are active', () => {
    const since = M * 60_000 + 30_000;
    const active = entries.filter((e) => e.lastSeen >= since);
    expect(countActive(entries, since)).toEqual({
      endpoints: active.length,
      ips: new Set(active.map((e) => e.ip)).size,
    });
  });

  it('floors a window start to the second', () => {
    expect(windowSince(1_800_000_012_345, 300)).toBe(1_800_000_012_000 - 300_000);
  });
});

describe('endpointTimes', () => {
  it('reads a roll-up part: minute offsets in the block, seconds in the column', () => {
    const hourStart = 500_000 * 60;
    const p: StoredPart = {
      block: {
        agentId: 'a',
        host: 'h',
        service: 's',
        minute: hourStart,
        seq: 500_000,
        part: 0,
        parts: 1,
        endpoints: [ep({ ip: '198.51.100.1', port: 1, firstSecond: 2, lastSecond: 59 })],
      },
      seconds: Uint8Array.from([30, 59]),
    };
    expect(endpointTimes(p, 0)).toEqual([
      hourStart * 60_000 + 2 * 60_000 + 30_000,
      hourStart * 60_000 + 59 * 60_000 + 59_000,
    ]);
  });
});
