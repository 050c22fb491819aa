/**
 * Hourly roll-ups: merging an hour's minute parts per agent keeps every
 * endpoint's totals and first/last seen exact to the second, decodes back
 * through the codec, is deterministic, and marks an empty shard.
 */
import { describe, expect, it } from 'vitest';
import type { BlockEndpoint } from '../../../contract/block.js';
import { decodeBlock } from '../../../contract/block-codec.js';
import { buildRollup } from '../../../functions/rollup/rollup-builder.js';
import { mergeParts } from '../../../functions/store/endpoint-merge.js';
import { checkRollupSeconds, type StoredPart } from '../../../functions/store/stored-part.js';

const HOUR = 500_000;

function ep(i: number, minute: number): BlockEndpoint {
  const last = (i * 11 + minute) % 60;
  return {
    ip: `198.51.100.${(i % 5) + 1}`,
    port: 1000 + (i % 3),
    localIp: '192.0.2.1',
    localPort: 53,
    pktsIn: i + minute,
    bytesIn: 10 * i,
    pktsOut: i % 2,
    bytesOut: i,
    firstSecond: Math.floor(last / 3),
    lastSecond: last,
    source: minute % 2 ? 'hook' : 'conntrack',
    sampleRate: 1,
  };
}

function minuteParts(): StoredPart[] {
  const parts: StoredPart[] = [];
  for (const offset of [0, 7, 30, 59]) {
    for (const agentId of ['a1', 'a2']) {
      const minute = HOUR * 60 + offset;
      const seen = new Map<string, BlockEndpoint>();
      for (let i = 0; i < 15; i++) {
        const e = ep(i + (agentId === 'a2' ? 3 : 0), offset);
        seen.set(`${e.ip}|${e.port}`, e);
      }
      const endpoints = [...seen.values()].sort((x, y) =>
        x.ip === y.ip ? x.port - y.port : x.ip < y.ip ? -1 : 1,
      );
      parts.push({
        block: {
          agentId,
          host: `h-${agentId}`,
          service: 's',
          minute,
          seq: offset + 1,
          part: 0,
          parts: 1,
          endpoints,
        },
      });
    }
  }
  return parts;
}

describe('buildRollup', () => {
  it('decodes to parts whose merge equals the merge of the minutes (totals, first/last seen, hosts)', () => {
    const minutes = minuteParts();
    const set = buildRollup('s', HOUR, minutes);
    expect(set.length).toBe(2); // one block per agent, each small enough for one part
    const stored: StoredPart[] = set.map((p) => {
      const d = decodeBlock(p.data!);
      if (!d.ok) throw new Error(d.reason);
      expect(d.block.minute).toBe(HOUR * 60);
      expect(checkRollupSeconds(d.block, p.seconds)).toBeNull();
      return { block: d.block, seconds: p.seconds };
    });
    const key = (e: { key: string }) => e.key;
    const byKey = <T extends { key: string }>(xs: T[]) =>
      [...xs].sort((a, b) => (key(a) < key(b) ? -1 : 1));
    const strip = (xs: ReturnType<typeof mergeParts>) =>
      byKey(xs).map(({ sources: _s, ...rest }) => rest);
    expect(strip(mergeParts(stored, { view: 'endpoint' }))).toEqual(
      strip(mergeParts(minutes, { view: 'endpoint' })),
    );
    expect(set.every((p) => p.parts === 2 && p.set === set[0]!.set)).toBe(true);
    expect(set.map((p) => p.part)).toEqual([0, 1]);
  });

  it('is deterministic: the same minutes in any order give the same set', () => {
    const minutes = minuteParts();
    const a = buildRollup('s', HOUR, minutes);
    const b = buildRollup('s', HOUR, [...minutes].reverse());
    expect(b.map((p) => p.hash)).toEqual(a.map((p) => p.hash));
    expect(b[0]!.set).toBe(a[0]!.set);
  });

  it('marks a shard with nothing in the hour with one data-less part', () => {
    const set = buildRollup('s', HOUR, []);
    expect(set).toHaveLength(1);
    expect(set[0]).toMatchObject({ part: 0, parts: 1, endpoints: 0 });
    expect(set[0]!.data).toBeUndefined();
  });

  it('refuses a seconds column of the wrong length or range', () => {
    const [p] = buildRollup('s', HOUR, minuteParts());
    const d = decodeBlock(p!.data!);
    if (!d.ok) throw new Error(d.reason);
    expect(checkRollupSeconds(d.block, p!.seconds!.subarray(1))).toMatch(/bytes for/);
    const bad = Uint8Array.from(p!.seconds!);
    bad[3] = 60;
    expect(checkRollupSeconds(d.block, bad)).toMatch(/out of range/);
    expect(checkRollupSeconds(d.block, undefined)).toMatch(/no t column/);
  });
});
