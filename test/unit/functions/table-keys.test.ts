/** The table's key layout: distinct keys per item kind, shards spread evenly and shared per client. */
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  ACTIVITY_BUCKET_MS,
  activityKey,
  activityKeyFloor,
  activityKeyPrefix,
  agentKey,
  appliedAttribute,
  appliedOf,
  bucketOfActivityKey,
  clientIpKey,
  clientShard,
  endpointKey,
  hostClientKey,
  serviceActivityPartition,
  serviceKey,
  ttlFor,
  WRITE_SHARDS,
} from '../../../contract/table-keys.js';

describe('table keys', () => {
  it('gives every item kind its own key', () => {
    const keys = [
      endpointKey('dns', '198.51.100.1', 53),
      clientIpKey('dns', '198.51.100.1'),
      hostClientKey('h1', 'dns', '198.51.100.1'),
      serviceKey('dns'),
      agentKey('dns'),
      endpointKey('dns', '198.51.100.1', 54),
      endpointKey('dns#1', '198.51.100.1', 53),
    ].map((k) => `${k.pk}|${k.sk}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('puts all items of one client of one service on the same shard', () => {
    const shard = clientShard('dns', '2001:db8::1');
    expect(endpointKey('dns', '2001:db8::1', 5).pk).toBe(`SVC#dns#${shard}`);
    expect(clientIpKey('dns', '2001:db8::1').pk).toBe(`SVC#dns#${shard}`);
    expect(hostClientKey('h', 'dns', '2001:db8::1').pk).toBe(`HOST#h#${shard}`);
  });

  it('spreads a big service evenly over the shards', () => {
    const counts = new Array<number>(WRITE_SHARDS).fill(0);
    for (let i = 0; i < 4096; i++) counts[clientShard('big', `10.${i >> 8}.${i & 255}.1`)]!++;
    const fair = 4096 / WRITE_SHARDS;
    for (const c of counts) {
      expect(c).toBeGreaterThan(fair * 0.8);
      expect(c).toBeLessThan(fair * 1.2);
    }
    expect(serviceActivityPartition('endpoint', 'big', 3)).not.toBe(
      serviceActivityPartition('ip', 'big', 3),
    );
  });

  it('keeps items retentionHours after their last packet and reads watermarks back', () => {
    expect(ttlFor(1_800_000_000_500, 24)).toBe(1_800_000_001 + 86_400);
    expect(
      appliedOf({ [appliedAttribute('a/1')]: 7, [appliedAttribute('b')]: 3, pktsIn: 9 }),
    ).toEqual({
      'a/1': 7,
      b: 3,
    });
  });
});

describe('activity keys (the indexes sort key)', () => {
  const bucket = fc
    .integer({ min: 0, max: 4_102_444_800_000 / ACTIVITY_BUCKET_MS })
    .map((n) => n * ACTIVITY_BUCKET_MS);
  const part = fc.string({ minLength: 1, maxLength: 30 });

  test.prop([bucket, bucket, part, part, part, part])(
    'order like their buckets, sit between the bucket floors, and never tie for different items',
    (b1, b2, pk1, sk1, pk2, sk2) => {
      const k1 = activityKey(b1, pk1, sk1);
      const k2 = activityKey(b2, pk2, sk2);
      if (b1 < b2) expect(k1 < k2).toBe(true);
      expect(k1 >= activityKeyFloor(b1)).toBe(true);
      expect(k1.startsWith(activityKeyPrefix(b1))).toBe(true);
      expect(k1 < activityKeyFloor(b1 + ACTIVITY_BUCKET_MS)).toBe(true);
      expect(bucketOfActivityKey(k1)).toBe(b1);
      if (b1 === b2 && (pk1 !== pk2 || sk1 !== sk2)) expect(k1).not.toBe(k2);
    },
  );
});
