/** The block store's key layout: distinct keys per item kind, agents spread over shards, sort keys in seq order. */
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  agentKey,
  agentShard,
  BLOCK_SHARDS,
  blockKey,
  blockPartition,
  blockSortKey,
  conflictKey,
  hourOf,
  lateKey,
  parseLateSortKey,
  rollupKey,
  serviceKey,
  summaryKey,
  ttlFor,
} from '../../../contract/table-keys.js';

const name = fc.stringMatching(/^[^\s\u0000-\u001f]{1,20}$/);

describe('table keys', () => {
  it('gives every item kind its own key', () => {
    const block = blockKey('dns', 29_000_000, 'a1', 7, 0);
    const keys = [
      block,
      blockKey('dns', 29_000_000, 'a1', 7, 1),
      blockKey('dns', 29_000_001, 'a1', 7, 0),
      blockKey('dns#1', 29_000_000, 'a1', 7, 0),
      rollupKey('dns', hourOf(29_000_000), 0, 0),
      summaryKey('dns', 29_000_000),
      serviceKey('dns'),
      agentKey('dns'),
      lateKey('dns', 29_000_000),
      conflictKey(block, 'dns', 29_000_000, 'ab12'),
    ].map((k) => `${k.pk}|${k.sk}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("puts all of one agent's blocks of a service-minute on its shard", () => {
    const shard = agentShard('i-0abc');
    expect(blockKey('dns', 5, 'i-0abc', 1, 0).pk).toBe(blockPartition('dns', 5, shard));
    expect(blockKey('dns', 5, 'i-0abc', 99, 3).pk).toBe(blockPartition('dns', 5, shard));
  });

  it('spreads a fleet of agents evenly over the shards', () => {
    const counts = new Array<number>(BLOCK_SHARDS).fill(0);
    for (let i = 0; i < 4000; i++) counts[agentShard(`agent-${i}`)]!++;
    for (const c of counts) expect(c).toBeGreaterThan((4000 / BLOCK_SHARDS) * 0.85);
  });

  test.prop([name, fc.nat(1e12), fc.nat(1e12), fc.nat(1023), fc.nat(1023)])(
    'sorts the parts of one agent by seq, then part',
    (agent, s1, s2, p1, p2) => {
      const a = blockSortKey(agent, s1, p1);
      const b = blockSortKey(agent, s2, p2);
      const want = s1 - s2 || p1 - p2;
      expect(a === b).toBe(want === 0);
      if (want !== 0) expect(a < b).toBe(want < 0);
      expect(a.startsWith(`${agent}#`)).toBe(true);
    },
  );

  test.prop([name, fc.nat(9_999_999_999)])('reads a late mark back', (service, minute) => {
    expect(parseLateSortKey(lateKey(service, minute).sk)).toEqual({ service, minute });
  });

  it('keeps items retentionHours after their last packet', () => {
    expect(ttlFor(1_700_000_000_500, 24)).toBe(1_700_000_001 + 24 * 3600);
  });
});
