import { describe, expect, it } from 'vitest';
import {
  ASSUMED,
  blockInputs,
  GOALS,
  goalVerdict,
  SCENARIOS,
  SHIPPED,
} from '../../../bench/cases/scale-model.js';
import {
  projectFlowLogsToCloudWatch,
  projectFlowLogsToS3,
  vendedLogsCost,
} from '../../../bench/flow-logs-model.js';
import {
  expectedBuckets,
  type FleetInputs,
  oldLayoutInputs,
  projectFleet,
} from '../../../bench/old-layout-model.js';
import { PRICES, VENDED_LOG_S3_TIERS } from '../../../bench/prices.js';
import {
  type BlockFleetInputs,
  earlySendsPerMinute,
  expectedDistinctServices,
  kinesisBilledKb,
  lambdaSeconds,
  onDemandShards,
  projectBlocks,
  putPayloadUnits,
  queryReadUnits,
  shardsNeeded,
  splitWriteUnits,
  writeUnits,
} from '../../../bench/scale-model.js';
import { SEND_SPREAD_SECONDS } from '../../../contract/block.js';
import { AGGREGATE_EVENT_SOURCE } from '../../../contract/resources.js';
import { TABLE_CAPACITY_DEFAULTS } from '../../../infra/config.js';

const MINUTES_PER_MONTH = 730 * 60;

describe('billing rules', () => {
  it('a write is one unit per started KB of the item, at least one', () => {
    expect(writeUnits(0)).toBe(1);
    expect(writeUnits(1)).toBe(1);
    expect(writeUnits(1024)).toBe(1);
    expect(writeUnits(1025)).toBe(2);
    expect(writeUnits(8375)).toBe(9);
  });

  it('a Kinesis on-demand record is billed rounded up to 1 KB', () => {
    expect(kinesisBilledKb(40)).toBe(1);
    expect(kinesisBilledKb(1024)).toBe(1);
    expect(kinesisBilledKb(4072)).toBe(4);
  });

  it('a Query rounds each page (at most 1 MB) up to 4 KB; eventually consistent costs half', () => {
    expect(queryReadUnits(0)).toBe(0.5);
    expect(queryReadUnits(4096)).toBe(0.5);
    expect(queryReadUnits(4097)).toBe(1);
    expect(queryReadUnits(1024 * 1024)).toBe(128);
    // A second page of 1 byte is its own 4 KB.
    expect(queryReadUnits(1024 * 1024 + 1)).toBe(128.5);
    expect(queryReadUnits(4097, false)).toBe(2);
  });

  it('a roll-up split into parts pays the rounding once per part', () => {
    expect(splitWriteUnits(0, 1000, 100)).toBe(0);
    expect(splitWriteUnits(900, 1000, 100)).toBe(1);
    // two full parts of 1000 + 100 B (2 units each) and a rest of 500 + 100 B (1 unit)
    expect(splitWriteUnits(2500, 1000, 100)).toBe(5);
  });
});

describe('model pieces', () => {
  it('early sends follow churn up to the token refill rate', () => {
    expect(earlySendsPerMinute(0, 30)).toBe(0);
    expect(earlySendsPerMinute(1, 30)).toBe(1);
    expect(earlySendsPerMinute(5, 30)).toBe(2);
    expect(earlySendsPerMinute(500, 30)).toBe(2);
  });

  it('distinct services among new clients: none for none, all for many, 1-1/e for one service at k=1', () => {
    expect(expectedDistinctServices(0, [0.5, 0.5])).toBe(0);
    expect(expectedDistinctServices(1e6, [0.5, 0.3, 0.2])).toBeCloseTo(3, 10);
    expect(expectedDistinctServices(1, [1])).toBeCloseTo(1 - Math.exp(-1), 12);
  });

  it('shards needed: 1,000 records/s and 1 MiB/s each, at least one', () => {
    expect(shardsNeeded(0, 0)).toBe(1);
    expect(shardsNeeded(160, 300_000)).toBe(1);
    expect(shardsNeeded(2_001, 0)).toBe(3);
    expect(shardsNeeded(10, 2 * 1024 * 1024 + 1)).toBe(3);
  });

  it('a provisioned PUT is one payload unit per started 25 KB', () => {
    expect(putPayloadUnits(1)).toBe(1);
    expect(putPayloadUnits(25 * 1024)).toBe(1);
    expect(putPayloadUnits(25 * 1024 + 1)).toBe(2);
  });

  it('on-demand shards: the floor of 4, or records/s and bytes/s', () => {
    expect(onDemandShards(100, 1000)).toBe(4);
    expect(onDemandShards(5_001, 1000)).toBe(6);
    expect(onDemandShards(10, 5 * 1024 * 1024 + 1)).toBe(6);
  });

  it('Lambda CPU scales with memory up to one vCPU at 1,769 MB', () => {
    expect(lambdaSeconds(1, 2)).toBe(1);
    expect(lambdaSeconds(1, 0.5)).toBeCloseTo(1769 / 512, 10);
  });
});

/** A small hand-made fleet whose every line can be worked out on paper. */
const base: BlockFleetInputs = {
  hosts: 10,
  endpointsPerHost: 300,
  serviceMix: [2 / 3, 1 / 3],
  mainParts: [
    { service: 0, endpoints: 200, dataBytes: 3000, itemBytes: 3200 }, // 4 WRU, 3 KB
    { service: 1, endpoints: 100, dataBytes: 1000, itemBytes: 1200 }, // 2 WRU, 1 KB
  ],
  sealSeconds: 60,
  earlyPart: { service: 0, endpoints: 2, dataBytes: 100, itemBytes: 300 },
  churnPerAgentMinute: 1,
  earlyBurst: 2,
  earlyRefillSeconds: 30,
  heartbeatRecordBytes: 200,
  heartbeatItemBytes: 150,
  redeliveredShare: 0,
  lateShare: 0,
  summaryItemBytes: 2048,
  countsItemBytes: 1000,
  windowMinutes: 5,
  retentionHours: 24,
  blockShards: 2,
  maxPartBytes: 350 * 1024,
  batchSize: 1000,
  batchWindowSeconds: 5,
  parallelizationFactor: 2,
  streamMode: 'on-demand',
  provisionedShards: 2,
  tableMode: 'on-demand',
  tableTargetUtilization: 0.7,
  tableMinCapacity: 5,
  sendSpreadSeconds: 50,
  aggregateMemoryGb: 1,
  summarizeMemoryGb: 2,
  queryMemoryGb: 0.5,
  aggregateEndpointMinutesPerSecond: 10_000,
  // Far faster than the wall rate: the wall time decides (a separate test makes the CPU decide).
  aggregateCpuEndpointMinutesPerSecond: 1e12,
  aggregateFixedMs: 0,
  mergeEndpointMinutesPerSecond: 100_000,
  encodeEndpointsPerSecond: 50_000,
  summarizeReads: 'whole-window',
  summarizeColdStartsPerHour: 1,
  apiWindowQueriesPerMinute: 0,
  historyQueriesPerMinute: 10,
  alarmReadsPerMinute: 2,
  operationalAlarms: 10,
  alarmsPerService: 2,
  operationalMetrics: 4,
};

describe('block store projection, line by line', () => {
  const p = projectBlocks(base);
  const early = 1 - Math.exp(-1 * (2 / 3)) + (1 - Math.exp(-1 * (1 / 3)));

  it('per agent-minute: two main parts, one early send of one new client', () => {
    expect(p.perAgentMinute.mainParts).toBe(2);
    expect(p.perAgentMinute.mainWriteUnits).toBe(4 + 2);
    expect(p.perAgentMinute.earlySends).toBe(1);
    expect(p.perAgentMinute.earlyParts).toBeCloseTo(early, 12);
    expect(p.perAgentMinute.earlyWriteUnits).toBeCloseTo(early, 12);
    expect(p.perAgentMinute.records).toBeCloseTo(2 + early + 1, 12);
    expect(p.perAgentMinute.kinesisBilledKb).toBeCloseTo(3 + 1 + early + 1, 12);
    expect(p.perAgentMinute.wireBytes).toBeCloseTo(4000 + early * 100 + 200, 9);
  });

  it('Kinesis and the aggregate function', () => {
    expect(p.recordsPerSecond).toBeCloseTo((10 * (3 + early)) / 60, 12);
    expect(p.shards).toBe(4);
    // 8 pollers never fill 1,000 records in 5 s: the window decides.
    expect(p.batchIntervalSeconds).toBe(5);
    expect(p.aggregateInvocationsPerSecond).toBeCloseTo(8 / 5, 12);
    const epm = (10 * (300 + early * 2)) / 60;
    expect(p.aggregateSecondsPerInvocation).toBeCloseTo(epm / 1.6 / 10_000, 12);
    expect(p.aggregateConcurrency).toBeCloseTo(epm / 10_000, 12);
  });

  it('write units a month: each kind of item', () => {
    const agentMinutes = 10 * MINUTES_PER_MONTH;
    expect(p.writeUnits.main).toBeCloseTo(6 * agentMinutes, 6);
    expect(p.writeUnits.early).toBeCloseTo(early * agentMinutes, 6);
    expect(p.writeUnits.heartbeats).toBe(agentMinutes);
    expect(p.writeUnits.services).toBe(8 * 2 * MINUTES_PER_MONTH);
    expect(p.writeUnits.summaries).toBe(2 * 2 * MINUTES_PER_MONTH);
    // Each summary's minute set in its hour of counts: one unit (under 1 KB) per service-minute.
    expect(p.writeUnits.counts).toBe(2 * 1 * MINUTES_PER_MONTH);
    expect(p.writeUnits.lateMarks).toBe(0);
    expect(p.writeUnits.redelivered).toBe(0);
    // Roll-ups: (10/2 hosts per shard) x (300 + 59 new) endpoints x share x 4000/300 B, one part each.
    const perEndpoint = 4000 / 300;
    const overhead = 400 / 2;
    const shardBytes = (share: number) => 5 * 359 * share * perEndpoint;
    const rollupPerHour =
      2 * writeUnits(shardBytes(2 / 3) + overhead) + 2 * writeUnits(shardBytes(1 / 3) + overhead);
    // Plus each service-hour's mark: put, one update per shard, deleted.
    expect(p.writeUnits.rollups).toBe((rollupPerHour + 2 * (1 + 2 + 1)) * 730);
    const sum =
      p.writeUnits.main +
      p.writeUnits.early +
      p.writeUnits.heartbeats +
      p.writeUnits.services +
      p.writeUnits.summaries +
      p.writeUnits.counts +
      p.writeUnits.rollups;
    expect(p.writeUnits.total).toBeCloseTo(sum, 6);
    expect(p.earlyShareOfWrites).toBeCloseTo(p.writeUnits.early / sum, 12);
  });

  it('read units a month: the window re-read every minute, and the hour once for the roll-up', () => {
    // Partition of service 0: (3200 + early x 300 x 2/3) x 10 hosts / 2 shards.
    const bytes0 = ((3200 + early * 300 * (2 / 3)) * 10) / 2;
    const bytes1 = ((1200 + early * 300 * (1 / 3)) * 10) / 2;
    const minute = 2 * queryReadUnits(bytes0) + 2 * queryReadUnits(bytes1);
    expect(p.readUnits.summaries).toBeCloseTo(minute * 5 * MINUTES_PER_MONTH, 6);
    expect(p.readUnits.rollups).toBeCloseTo(minute * 60 * 730, 6);
    expect(p.readUnits.api).toBe(0);
    // A history request reads two hours of counts (2 KB): half a unit.
    expect(p.readUnits.history).toBe(10 * 0.5 * MINUTES_PER_MONTH);
    expect(p.readUnits.total).toBeCloseTo(
      p.readUnits.summaries + p.readUnits.rollups + p.readUnits.history,
      6,
    );
  });

  it('money: every line is units times its price', () => {
    const m = p.monthly;
    expect(m.dynamodbWrites).toBeCloseTo(
      (p.writeUnits.total / 1e6) * PRICES.dynamodbWriteRequestUnitsPerMillion.value,
      9,
    );
    expect(m.dynamodbReads).toBeCloseTo(
      (p.readUnits.total / 1e6) * PRICES.dynamodbReadRequestUnitsPerMillion.value,
      9,
    );
    expect(m.dynamodbStorage).toBeCloseTo(p.storageGb * PRICES.dynamodbStorageGbMonth.value, 9);
    const agentMinutes = 10 * MINUTES_PER_MONTH;
    const kinesis =
      0.04 * 730 +
      ((p.perAgentMinute.kinesisBilledKb * 1024 * agentMinutes) / 1024 ** 3) * 0.08 +
      ((p.perAgentMinute.wireBytes * agentMinutes) / 1024 ** 3) * 0.04;
    expect(m.kinesis).toBeCloseTo(kinesis, 9);
    expect(p.cloudWatch.metrics).toBe(2 * 2 + 4);
    expect(p.cloudWatch.alarms).toBe(10 + 2 * 2);
    expect(p.cloudWatch.alarmReads).toBe(2 * MINUTES_PER_MONTH);
    expect(m.total).toBeCloseTo(
      m.kinesis + m.lambda + m.dynamodbWrites + m.dynamodbReads + m.dynamodbStorage + m.cloudWatch,
      9,
    );
  });

  it('roll-ups: the work of the hour, its biggest shard, and its reads from the spare capacity', () => {
    expect(p.rollupLongestShardSeconds).toBeCloseTo((p.rollupSecondsPerHour * (2 / 3)) / 2, 9);
    expect(p.rollupReadSecondsPerHour).toBe(0); // on-demand: no capacity to share
    const pv = projectBlocks({ ...base, tableMode: 'provisioned', hosts: 10_000 });
    const spare =
      pv.provisionedCapacity.read -
      (pv.readUnits.summaries + pv.readUnits.api + pv.readUnits.history) / (730 * 3600);
    expect(pv.rollupReadSecondsPerHour).toBeCloseTo(pv.readUnits.rollups / 730 / spare, 9);
  });

  it('a provisioned table: capacity unit-hours at the target over the mean, at least the peak and the minimum', () => {
    const pv = projectBlocks({ ...base, tableMode: 'provisioned', hosts: 10_000 });
    const od = projectBlocks({ ...base, hosts: 10_000 });
    const seconds = 730 * 3600;
    const meanWrite = od.writeUnits.total / seconds;
    expect(pv.tableRates.meanWrite).toBeCloseTo(meanWrite, 9);
    // The agents' writes (main, early, heartbeats) come within 50 s of each minute.
    const agents = od.writeUnits.main + od.writeUnits.early + od.writeUnits.heartbeats;
    expect(pv.tableRates.peakWrite).toBeCloseTo(
      ((agents * 60) / 50 + od.writeUnits.total - agents) / seconds,
      9,
    );
    expect(pv.provisionedCapacity.write).toBe(Math.ceil(meanWrite / 0.7));
    expect(pv.provisionedCapacity.read).toBe(
      Math.max(5, Math.ceil(od.readUnits.total / seconds / 0.7)),
    );
    expect(pv.monthly.dynamodbWrites).toBeCloseTo(pv.provisionedCapacity.write * 730 * 0.00065, 9);
    expect(pv.monthly.dynamodbReads).toBeCloseTo(pv.provisionedCapacity.read * 730 * 0.00013, 9);
    // Same units, so the same everything else.
    expect(pv.writeUnits.total).toBe(od.writeUnits.total);
    expect(pv.monthly.kinesis).toBe(od.monthly.kinesis);
    // A small fleet pays the auto scaling minimum; the peak decides when the target leaves less headroom.
    const tiny = projectBlocks({ ...base, tableMode: 'provisioned', hosts: 1 });
    expect(tiny.provisionedCapacity).toEqual({ write: 5, read: 5 });
    const tight = projectBlocks({
      ...base,
      tableMode: 'provisioned',
      hosts: 10_000,
      tableTargetUtilization: 0.95,
    });
    expect(tight.provisionedCapacity.write).toBe(Math.ceil(tight.tableRates.peakWrite));
  });

  it('a provisioned stream: shard-hours and a payload unit per record; its pollers set the batches', () => {
    const pv = projectBlocks({ ...base, streamMode: 'provisioned', provisionedShards: 2 });
    const agentMinutes = 10 * MINUTES_PER_MONTH;
    // Records per agent-minute: 2 main + early parts + 1 heartbeat, each under 25 KB.
    const units = (2 + early + 1) * agentMinutes;
    expect(pv.monthly.kinesis).toBeCloseTo(0.015 * 2 * 730 + (units / 1e6) * 0.014, 9);
    expect(pv.shards).toBe(2);
    expect(pv.shardsNeeded).toBe(1);
    expect(pv.streamOverCapacity).toBe(false);
    // 2 shards x 2 = 4 pollers, each a batch per 5 s window.
    expect(pv.aggregateInvocationsPerSecond).toBeCloseTo(4 / 5, 12);
    const small = projectBlocks({ ...base, hosts: 100_000, streamMode: 'provisioned' });
    expect(small.shardsNeeded).toBeGreaterThan(2);
    expect(small.streamOverCapacity).toBe(true);
  });

  it('aggregate time: the CPU work stretched by the memory share when it exceeds the wall time', () => {
    const cpu = projectBlocks({
      ...base,
      aggregateCpuEndpointMinutesPerSecond: 5_000,
      aggregateMemoryGb: 0.5,
    });
    const epmPerInvocation = (10 * (300 + early * 2)) / 60 / 1.6;
    expect(cpu.aggregateSecondsPerInvocation).toBeCloseTo(
      epmPerInvocation / 5_000 / (512 / 1769),
      12,
    );
    expect(cpu.gbSeconds.aggregate).toBeCloseTo(
      cpu.aggregateInvocationsPerSecond * 730 * 3600 * cpu.aggregateSecondsPerInvocation * 0.5,
      3,
    );
  });

  it('a warm summarizer reads the newly complete minute; a cold start reads the window', () => {
    const warm = projectBlocks({ ...base, summarizeReads: 'warm-cache' });
    const cold = 1 / 60;
    const minutes = cold * 5 + (1 - cold) * 1;
    expect(warm.readUnits.summaries).toBeCloseTo((p.readUnits.summaries / 5) * minutes, 6);
    const fleetEpm = 10 * (300 + early * 2);
    expect(warm.summarizeSecondsPerRun).toBeCloseTo(fleetEpm / 100_000, 12);
    expect(warm.summarizeColdSecondsPerRun).toBeCloseTo((5 * fleetEpm) / 100_000, 12);
    expect(warm.gbSeconds.summarize).toBeCloseTo(
      MINUTES_PER_MONTH * ((minutes * fleetEpm) / 100_000) * 2,
      3,
    );
    // Roll-ups: the hour merged, and (300 + 59 new) x 10 endpoints encoded once.
    expect(warm.rollupSecondsPerHour).toBeCloseTo((60 * fleetEpm) / 100_000 + 3590 / 50_000, 9);
    expect(warm.monthly.total).toBeLessThan(p.monthly.total);
  });

  it('a redelivered record costs its writes again; a late part re-summarizes its minute', () => {
    const r = projectBlocks({ ...base, redeliveredShare: 0.1, lateShare: 0.01 });
    expect(r.writeUnits.redelivered).toBeCloseTo(
      0.1 * (p.writeUnits.main + p.writeUnits.early + p.writeUnits.heartbeats),
      6,
    );
    // 10 hosts x 1 part per service: a service-minute has a late part with 1 - 0.99^10.
    const resummary = 1 - 0.99 ** 10;
    expect(r.writeUnits.summaries).toBeCloseTo(p.writeUnits.summaries * (1 + resummary), 6);
    // Without the cache a re-summary reads the window again; with it, its own minute.
    expect(r.readUnits.summaries).toBeCloseTo(p.readUnits.summaries * (1 + resummary), 3);
    const rw = projectBlocks({
      ...base,
      redeliveredShare: 0.1,
      lateShare: 0.01,
      summarizeReads: 'warm-cache',
    });
    const w = projectBlocks({ ...base, summarizeReads: 'warm-cache' });
    expect(rw.readUnits.summaries - w.readUnits.summaries).toBeCloseTo(
      (p.readUnits.summaries / 5) * resummary,
      3,
    );
  });

  it('sealing every 10 s multiplies the main parts by 6', () => {
    const fast = projectBlocks({ ...base, sealSeconds: 10 });
    expect(fast.writeUnits.main).toBeCloseTo(6 * p.writeUnits.main, 6);
    expect(fast.monthly.total).toBeGreaterThan(p.monthly.total);
  });

  it('the fleet doubles, the per-agent costs double', () => {
    const two = projectBlocks({ ...base, hosts: 20 });
    expect(two.writeUnits.main).toBeCloseTo(2 * p.writeUnits.main, 6);
    expect(two.writeUnits.heartbeats).toBe(2 * p.writeUnits.heartbeats);
  });
});

describe('shipped defaults', () => {
  // Real part sizes of the codec on the synthetic host; speeds fixed (tests do not time).
  const speeds = {
    mergeEndpointMinutesPerSecond: 200_000,
    encodeEndpointsPerSecond: 20_000,
    aggregateEndpointMinutesPerSecond: 20_000,
    aggregateCpuEndpointMinutesPerSecond: 30_000,
  };
  const { inputs } = blockInputs(speeds);
  const d = projectBlocks(inputs);

  it('are the cheap settings: a main part per service-minute, the token bucket, the 5 s window', () => {
    expect(inputs.sealSeconds).toBe(60);
    expect(d.perAgentMinute.mainParts).toBe(inputs.serviceMix.length);
    expect(SHIPPED.earlyBurst).toBe(2);
    expect(60 / SHIPPED.earlyRefillSeconds).toBe(2);
    expect(d.perAgentMinute.earlySends).toBeLessThanOrEqual(2);
    expect(inputs.batchWindowSeconds).toBe(AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds);
    expect(inputs.churnPerAgentMinute).toBe(ASSUMED.churnPerAgentMinute);
  });

  it('are a provisioned stream of 2 shards with room for the fleet, and the cached summarizer', () => {
    expect(inputs.streamMode).toBe('provisioned');
    expect(d.shards).toBe(2);
    expect(d.streamOverCapacity).toBe(false);
    expect(d.recordsPerSecond).toBeLessThan(2 * 1000);
    expect(d.wireBytesPerSecond).toBeLessThan(2 * 1024 * 1024);
    expect(inputs.summarizeReads).toBe('warm-cache');
    expect(inputs.aggregateMemoryGb).toBe(0.5);
  });

  it('are a provisioned table under auto scaling at the settings of the stack, cheaper than on-demand', () => {
    expect(inputs.tableMode).toBe(TABLE_CAPACITY_DEFAULTS.mode);
    expect(inputs.tableMode).toBe('provisioned');
    expect(inputs.tableTargetUtilization).toBe(
      TABLE_CAPACITY_DEFAULTS.targetUtilizationPercent / 100,
    );
    expect(inputs.sendSpreadSeconds).toBe(SEND_SPREAD_SECONDS);
    // The fleet fits under the stack's default ceilings.
    expect(d.provisionedCapacity.write).toBeLessThanOrEqual(
      TABLE_CAPACITY_DEFAULTS.maxWriteCapacity,
    );
    expect(d.provisionedCapacity.read).toBeLessThanOrEqual(TABLE_CAPACITY_DEFAULTS.maxReadCapacity);
    const od = projectBlocks({ ...inputs, tableMode: 'on-demand' });
    expect(od.monthly.dynamodbWrites).toBeGreaterThan(2 * d.monthly.dynamodbWrites);
  });

  it('are the headline row, and no EXPENSIVE row is cheaper', () => {
    expect(SCENARIOS[0]!.overrides).toEqual({});
    for (const s of SCENARIOS.filter((x) => x.label.includes('EXPENSIVE'))) {
      expect(projectBlocks({ ...inputs, ...s.overrides }).monthly.total).toBeGreaterThan(
        d.monthly.total,
      );
    }
    // Provisioned beats on-demand by the on-demand stream-hour and per-KB charges.
    const od = projectBlocks({ ...inputs, streamMode: 'on-demand' });
    expect(od.monthly.kinesis - d.monthly.kinesis).toBeGreaterThan(50);
  });

  it('state against the goal exactly what they cost', () => {
    const verdict = goalVerdict(d.monthly.total);
    if (d.monthly.total <= GOALS.monthlyUsd) expect(verdict).toMatch(/^meets/);
    else {
      expect(verdict).toBe(
        `MISSES the $600 goal by $${Math.ceil(d.monthly.total - GOALS.monthlyUsd)}`,
      );
    }
    expect(goalVerdict(GOALS.monthlyUsd)).toMatch(/^meets/);
    expect(goalVerdict(GOALS.monthlyUsd + 0.5)).toBe('MISSES the $600 goal by $1');
  });

  it('keep the early parts within their share of the write cost', () => {
    expect(d.earlyShareOfWrites).toBeLessThanOrEqual(GOALS.earlyShareOfWrites);
  });

  it('do not land in the expensive rows (seal every 10 s, no token bucket)', () => {
    const fast = projectBlocks({ ...inputs, sealSeconds: 10 });
    const unlimited = projectBlocks({ ...inputs, earlyRefillSeconds: 1 });
    expect(d.monthly.total).toBeLessThan(fast.monthly.total);
    expect(d.writeUnits.early).toBeLessThan(unlimited.writeUnits.early);
    // A main part of 1,000 endpoints costs a few write units, not the old 4.6 per client.
    expect(d.perAgentMinute.mainWriteUnits).toBeLessThan(1000 * 0.1);
  });
});

describe('old layout (its formulas, kept for comparison)', () => {
  const es = { batchWindowSeconds: 5, batchSize: 1000, parallelizationFactor: 2 };

  it('expectedBuckets: all buckets fill with many lines, one line fills one', () => {
    expect(expectedBuckets(0, 16)).toBe(0);
    expect(expectedBuckets(1, 16)).toBeCloseTo(1, 10);
    expect(expectedBuckets(10_000, 16)).toBeCloseTo(16, 6);
  });

  it('a client refreshed once a minute costs 3 + 8/5 = 4.6 write units a minute', () => {
    const i: FleetInputs = { ...oldLayoutInputs(1000, 1000, 60, es), batchWindowSeconds: 60 };
    const p = projectFleet(i);
    expect(p.dynamodbWriteUnitsPerSecond * 60).toBeCloseTo(1_000_000 * 4.6, 3);
  });

  it('with the recorded inputs, the one-minute row is what the last full run printed', () => {
    const p = projectFleet(oldLayoutInputs(1000, 1000, 60, es));
    // bench/results.json of 2026-11-26: $128,178.70 for the quiet scenario.
    expect(p.monthly.total).toBeCloseTo(128_178.7, 0);
  });
});

describe('flow logs', () => {
  const fl = { activeClients: 1_000_000, hosts: 1000, retentionHours: 24, windowSeconds: 300 };

  it('vended log tiers apply in order (CloudWatch and S3)', () => {
    expect(vendedLogsCost(100)).toBeCloseTo(50, 6);
    expect(vendedLogsCost(10 * 1024 + 100)).toBeCloseTo(5120 + 25, 6);
    expect(vendedLogsCost(60 * 1024)).toBeCloseTo(5120 + 5120 + 2048 + 512, 6);
    expect(vendedLogsCost(100, VENDED_LOG_S3_TIERS)).toBeCloseTo(25, 6);
    expect(vendedLogsCost(40 * 1024, VENDED_LOG_S3_TIERS)).toBeCloseTo(2560 + 3072 + 768, 6);
  });

  it('two records per client a minute; storage follows the retention', () => {
    const cw = projectFlowLogsToCloudWatch(fl);
    expect(cw.recordsPerSecond).toBeCloseTo(2_000_000 / 60, 6);
    const week = projectFlowLogsToCloudWatch({ ...fl, retentionHours: 168 });
    expect(week.monthly.storage).toBeCloseTo(cw.monthly.storage * 7, 9);
    expect(cw.monthly.total).toBeCloseTo(
      cw.monthly.delivery + cw.monthly.storage + cw.monthly.activeSetQueries,
      9,
    );
  });

  it('S3 delivery costs half of CloudWatch Logs delivery in the first tier', () => {
    const s3 = projectFlowLogsToS3(fl);
    const cw = projectFlowLogsToCloudWatch(fl);
    expect(s3.gbPerMonth).toBeCloseTo(cw.gbPerMonth, 9);
    expect(s3.monthly.delivery).toBeLessThan(cw.monthly.delivery);
    expect(s3.monthly.requests).toBeCloseTo(((1000 * 12 * 730) / 1000) * 0.005, 9);
    expect(s3.monthly.total).toBeCloseTo(
      s3.monthly.delivery + s3.monthly.storage + s3.monthly.requests + s3.monthly.activeSetQueries,
      9,
    );
  });
});
