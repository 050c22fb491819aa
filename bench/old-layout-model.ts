/**
 * The scale model of the OLD store layout (a mutable DynamoDB item per
 * client, rewritten by conditional UpdateItem every batch, plus activity
 * index entries), kept so the block store's projection can be printed next to
 * what it replaces. Its inputs are the figures the last full run of the old
 * code recorded (OLD_LAYOUT_RECORDED), since that code is gone. Pure
 * arithmetic, so it is tested.
 */
import { MODEL_INPUTS, PRICES } from './prices.js';

/**
 * What the full bench run of 2026-11-26 (bench/results.json of the old
 * layout, 2 cores) measured: the old model's inputs, no longer measurable.
 */
export const OLD_LAYOUT_RECORDED = {
  at: '2026-11-26T11:22:50Z',
  /** packing case: gzip'd bytes per flow line, 1,000-flow window in 16 partition buckets. */
  wireBytesPerLine: 44.139,
  /** aggregator case: flow lines per second per invocation. */
  aggregatorLinesPerSecond: 17_636,
  /** aggregator case: item write requests per client per batch. */
  writesPerClientBatch: 3.005,
  /** The old layout's constants: 16 partition buckets, 300 s activity buckets, 3 items and 8 index write units per client. */
  partitionBuckets: 16,
  activityBucketSeconds: 300,
  writeUnitsPerClientBatch: 3,
  indexWriteUnitsPerBucketChange: 8,
  /** The aggregate function's memory then (GB). */
  aggregateMemoryGb: 1,
} as const;

/** What the model needs to know about the fleet and about udpwatch. */
export interface FleetInputs {
  hosts: number;
  clientsPerHost: number;
  /** Seconds between two lines about one active client (1 while it sends every second, up to the refresh interval when quiet). */
  lineIntervalSeconds: number;
  /** Agent cycle (s): one batch of records per cycle. */
  agentIntervalSeconds: number;
  /** Partition buckets per agent (one record per non-empty bucket per cycle). */
  partitionBuckets: number;
  /** Measured: gzip'd bytes per flow line. */
  wireBytesPerLine: number;
  /** Event source: batching window (s), batch size (records), parallelization factor. */
  batchWindowSeconds: number;
  batchSize: number;
  parallelizationFactor: number;
  /** Measured: item write requests per distinct client in a batch. */
  writesPerClientBatch: number;
  /** Write request units of the items per client per batch (index writes not included). */
  writeUnitsPerClientBatch: number;
  /** Index write units each time a client's items enter a new activity bucket (delete + put per index entry). */
  indexWriteUnitsPerBucketChange: number;
  /** Width of an activity bucket (s): a steadily active client changes bucket once per bucket at most. */
  activityBucketSeconds: number;
  /** Measured: flow lines one aggregate invocation folds and writes per second. */
  aggregatorLinesPerSecond: number;
}

/** What the old model projects. */
export interface FleetProjection {
  activeClients: number;
  linesPerSecond: number;
  recordsPerSecond: number;
  recordBytes: number;
  bytesPerSecond: number;
  shards: number;
  /** Seconds between two batches of one partition key. */
  batchIntervalSeconds: number;
  lambdaInvocationsPerSecond: number;
  /** Instances busy at once to keep up at the measured lines/s per invocation. */
  lambdaConcurrencyNeeded: number;
  /** The most the event source runs at once: shards × parallelization factor. */
  lambdaConcurrencyLimit: number;
  /** The stream falls behind: needed concurrency exceeds the limit (add shards or parallelization). */
  lambdaBacklog: boolean;
  dynamodbWritesPerSecond: number;
  dynamodbWriteUnitsPerSecond: number;
  /** The part of dynamodbWriteUnitsPerSecond that rewrites index entries. */
  indexWriteUnitsPerSecond: number;
  /** The same clients written one request per line (no folding). */
  naiveWriteUnitsPerSecond: number;
  monthly: {
    kinesisOnDemand: number;
    kinesisProvisioned: number;
    lambda: number;
    dynamodb: number;
    /** Kinesis on-demand + Lambda + DynamoDB. */
    total: number;
  };
}

const SECONDS_PER_MONTH = MODEL_INPUTS.hoursPerMonth.value * 3600;
const GB = 1024 ** 3;

/** Expected non-empty buckets when `lines` lines fall uniformly into `buckets` buckets. */
export function expectedBuckets(lines: number, buckets: number): number {
  if (lines <= 0) return 0;
  return buckets * (1 - (1 - 1 / buckets) ** lines);
}

/** Projects shards, concurrency, writes and monthly cost for a fleet on the old layout. */
export function projectFleet(i: FleetInputs): FleetProjection {
  const activeClients = i.hosts * i.clientsPerHost;
  const linesPerSecond = activeClients / i.lineIntervalSeconds;
  const linesPerCycle = (i.clientsPerHost * i.agentIntervalSeconds) / i.lineIntervalSeconds;
  const recordsPerCycle = Math.max(1, expectedBuckets(linesPerCycle, i.partitionBuckets));
  const recordsPerSecond = (i.hosts * recordsPerCycle) / i.agentIntervalSeconds;
  const recordBytes = (linesPerCycle * i.wireBytesPerLine) / recordsPerCycle;
  const bytesPerSecond = linesPerSecond * i.wireBytesPerLine;
  const shards = Math.max(
    1,
    Math.ceil(recordsPerSecond / MODEL_INPUTS.kinesisShardRecordsPerSecond.value),
    Math.ceil(bytesPerSecond / MODEL_INPUTS.kinesisShardBytesPerSecond.value),
  );
  // Each shard is read by `parallelizationFactor` pollers; one fires when its
  // batch is full or its window ends, whichever comes first.
  const pollers = shards * i.parallelizationFactor;
  const fillSeconds = (i.batchSize * pollers) / recordsPerSecond;
  const batchIntervalSeconds = Math.min(i.batchWindowSeconds, fillSeconds);
  const lambdaInvocationsPerSecond = pollers / batchIntervalSeconds;
  const linesPerInvocation = linesPerSecond / lambdaInvocationsPerSecond;
  const durationSeconds = linesPerInvocation / i.aggregatorLinesPerSecond;
  const lambdaConcurrencyNeeded = lambdaInvocationsPerSecond * durationSeconds;
  // A client is written once per batch it appears in: at most once a batch interval.
  const clientBatchesPerSecond =
    activeClients / Math.max(batchIntervalSeconds, i.lineIntervalSeconds);
  const dynamodbWritesPerSecond = clientBatchesPerSecond * i.writesPerClientBatch;
  // Index entries move once per bucket, or once per write when writes are further apart.
  const writeIntervalSeconds = Math.max(batchIntervalSeconds, i.lineIntervalSeconds);
  const indexWriteUnitsPerSecond =
    (activeClients * i.indexWriteUnitsPerBucketChange) /
    Math.max(i.activityBucketSeconds, writeIntervalSeconds);
  const dynamodbWriteUnitsPerSecond =
    clientBatchesPerSecond * i.writeUnitsPerClientBatch + indexWriteUnitsPerSecond;
  const naiveWriteUnitsPerSecond =
    linesPerSecond * i.writeUnitsPerClientBatch + indexWriteUnitsPerSecond;

  const hours = MODEL_INPUTS.hoursPerMonth.value;
  const kbPerRecord = Math.max(1, Math.ceil(recordBytes / 1024));
  const gbInBilled = (recordsPerSecond * kbPerRecord * 1024 * SECONDS_PER_MONTH) / GB;
  const gbOut = (bytesPerSecond * SECONDS_PER_MONTH) / GB;
  const kinesisOnDemand =
    PRICES.kinesisOnDemandStreamHour.value * hours +
    gbInBilled * PRICES.kinesisOnDemandGbIn.value +
    gbOut * PRICES.kinesisOnDemandGbOut.value;
  const payloadUnits =
    recordsPerSecond * Math.max(1, Math.ceil(recordBytes / (25 * 1024))) * SECONDS_PER_MONTH;
  const kinesisProvisioned =
    shards * hours * PRICES.kinesisShardHour.value +
    (payloadUnits / 1e6) * PRICES.kinesisPutPayloadUnitsPerMillion.value;
  const invocations = lambdaInvocationsPerSecond * SECONDS_PER_MONTH;
  const lambda =
    (invocations / 1e6) * PRICES.lambdaRequestsPerMillion.value +
    invocations *
      durationSeconds *
      OLD_LAYOUT_RECORDED.aggregateMemoryGb *
      PRICES.lambdaArmGbSecond.value;
  const dynamodb =
    ((dynamodbWriteUnitsPerSecond * SECONDS_PER_MONTH) / 1e6) *
    PRICES.dynamodbWriteRequestUnitsPerMillion.value;
  return {
    activeClients,
    linesPerSecond,
    recordsPerSecond,
    recordBytes,
    bytesPerSecond,
    shards,
    batchIntervalSeconds,
    lambdaInvocationsPerSecond,
    lambdaConcurrencyNeeded,
    lambdaConcurrencyLimit: pollers,
    lambdaBacklog: lambdaConcurrencyNeeded > pollers,
    dynamodbWritesPerSecond,
    dynamodbWriteUnitsPerSecond,
    indexWriteUnitsPerSecond,
    naiveWriteUnitsPerSecond,
    monthly: {
      kinesisOnDemand,
      kinesisProvisioned,
      lambda,
      dynamodb,
      total: kinesisOnDemand + lambda + dynamodb,
    },
  };
}

/** The old model's inputs for a fleet, from the figures recorded by its last full run. */
export function oldLayoutInputs(
  hosts: number,
  clientsPerHost: number,
  lineIntervalSeconds: number,
  eventSource: { batchWindowSeconds: number; batchSize: number; parallelizationFactor: number },
): FleetInputs {
  const r = OLD_LAYOUT_RECORDED;
  return {
    hosts,
    clientsPerHost,
    lineIntervalSeconds,
    agentIntervalSeconds: 1,
    partitionBuckets: r.partitionBuckets,
    wireBytesPerLine: r.wireBytesPerLine,
    ...eventSource,
    writesPerClientBatch: r.writesPerClientBatch,
    writeUnitsPerClientBatch: r.writeUnitsPerClientBatch,
    indexWriteUnitsPerBucketChange: r.indexWriteUnitsPerBucketChange,
    activityBucketSeconds: r.activityBucketSeconds,
    aggregatorLinesPerSecond: r.aggregatorLinesPerSecond,
  };
}
