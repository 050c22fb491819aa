import { describe, expect, it } from 'vitest';
import {
  expectedBuckets,
  type FleetInputs,
  projectFleet,
  projectFlowLogs,
  vendedLogsCost,
} from '../../../bench/scale-model.js';

const base: FleetInputs = {
  hosts: 1000,
  clientsPerHost: 1000,
  lineIntervalSeconds: 1,
  agentIntervalSeconds: 1,
  partitionBuckets: 16,
  wireBytesPerLine: 40,
  batchWindowSeconds: 5,
  batchSize: 1000,
  parallelizationFactor: 2,
  writesPerClientBatch: 3,
  writeUnitsPerClientBatch: 3,
  indexWriteUnitsPerBucketChange: 8,
  activityBucketSeconds: 300,
  aggregatorLinesPerSecond: 10_000,
};

describe('scale model', () => {
  it('expectedBuckets: all buckets fill with many lines, one line fills one', () => {
    expect(expectedBuckets(0, 16)).toBe(0);
    expect(expectedBuckets(1, 16)).toBeCloseTo(1, 10);
    expect(expectedBuckets(10_000, 16)).toBeCloseTo(16, 6);
    expect(expectedBuckets(16, 16)).toBeGreaterThan(9);
    expect(expectedBuckets(16, 16)).toBeLessThan(11);
  });

  it('vended log tiers apply in order', () => {
    expect(vendedLogsCost(100)).toBeCloseTo(50, 6);
    expect(vendedLogsCost(10 * 1024)).toBeCloseTo(5120, 6);
    expect(vendedLogsCost(10 * 1024 + 100)).toBeCloseTo(5120 + 25, 6);
    expect(vendedLogsCost(60 * 1024)).toBeCloseTo(5120 + 5120 + 2048 + 512, 6);
  });

  it('busy clients: shards bound by bytes, one write per client per batch window', () => {
    const p = projectFleet(base);
    expect(p.linesPerSecond).toBe(1_000_000);
    expect(p.recordsPerSecond).toBeCloseTo(16_000, 0);
    expect(p.bytesPerSecond).toBe(40_000_000);
    // 40 MB/s needs 39 shards by bytes; 16,000 records/s needs 16 by count.
    expect(p.shards).toBe(Math.ceil(40_000_000 / (1024 * 1024)));
    // 78 pollers share 16,000 records/s: a 1,000-record batch fills in 4.875 s, before the 5 s window.
    const fill = (1000 * p.shards * 2) / p.recordsPerSecond;
    expect(fill).toBeLessThan(5);
    expect(p.batchIntervalSeconds).toBeCloseTo(fill, 10);
    expect(p.dynamodbWritesPerSecond).toBeCloseTo((1_000_000 / fill) * 3, 6);
    // Index entries move once per 300 s bucket, whichever scheme writes the items.
    expect(p.indexWriteUnitsPerSecond).toBeCloseTo((1_000_000 * 8) / 300, 6);
    expect(
      (p.naiveWriteUnitsPerSecond - p.indexWriteUnitsPerSecond) /
        (p.dynamodbWriteUnitsPerSecond - p.indexWriteUnitsPerSecond),
    ).toBeCloseTo(fill, 6);
    expect(p.lambdaConcurrencyLimit).toBe(p.shards * 2);
    // 1M lines/s at 10,000 lines/s per invocation keeps 100 instances busy: more than 84 pollers.
    expect(p.lambdaConcurrencyNeeded).toBeCloseTo(100, 6);
    expect(p.lambdaBacklog).toBe(true);
    expect(p.monthly.total).toBeCloseTo(
      p.monthly.kinesisOnDemand + p.monthly.lambda + p.monthly.dynamodb,
      6,
    );
  });

  it('quiet clients (one line a minute) write once a minute, not once a batch', () => {
    const p = projectFleet({ ...base, lineIntervalSeconds: 60 });
    expect(p.dynamodbWritesPerSecond).toBeCloseTo((1_000_000 / 60) * 3, 6);
    expect(p.naiveWriteUnitsPerSecond).toBeCloseTo(p.dynamodbWriteUnitsPerSecond, 6);
    // ~16.7 lines a cycle over 16 buckets: records are small and many.
    expect(p.recordBytes).toBeLessThan(100);
    expect(p.monthly.dynamodb).toBeLessThan(projectFleet(base).monthly.dynamodb);
  });

  it('a client written once a minute costs 3 + 8 / 5 = 4.6 write units a minute; one written less often than a bucket, 3 + 8 per write', () => {
    const minute = projectFleet({ ...base, lineIntervalSeconds: 60, batchWindowSeconds: 60 });
    expect(minute.dynamodbWriteUnitsPerSecond * 60).toBeCloseTo(1_000_000 * 4.6, 3);
    const rare = projectFleet({ ...base, lineIntervalSeconds: 600 });
    expect(rare.dynamodbWriteUnitsPerSecond * 600).toBeCloseTo(1_000_000 * 11, 3);
  });

  it('costs scale linearly with the fleet where they should', () => {
    // Small lines: shards are bound by record count (16 per 1,000 hosts), exactly linear.
    const one = projectFleet({ ...base, wireBytesPerLine: 4 });
    const two = projectFleet({ ...base, wireBytesPerLine: 4, hosts: 2000 });
    expect(two.shards).toBe(one.shards * 2);
    expect(two.batchIntervalSeconds).toBeCloseTo(one.batchIntervalSeconds, 10);
    expect(two.dynamodbWriteUnitsPerSecond).toBeCloseTo(one.dynamodbWriteUnitsPerSecond * 2, 6);
    expect(two.monthly.dynamodb).toBeCloseTo(one.monthly.dynamodb * 2, 6);
  });

  it('flow logs: two records per client per minute', () => {
    const f = projectFlowLogs(1_000_000);
    expect(f.recordsPerSecond).toBeCloseTo(2_000_000 / 60, 6);
    expect(f.monthly.total).toBeGreaterThan(f.monthly.delivery);
    expect(projectFlowLogs(2_000_000).gbPerMonth).toBeCloseTo(f.gbPerMonth * 2, 6);
  });
});
