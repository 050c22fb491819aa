/**
 * The scale model: from per-flow costs measured by the other benchmark cases,
 * what a fleet needs (Kinesis shards, Lambda concurrency, DynamoDB writes) and
 * what it costs a month at on-demand prices, next to VPC Flow Logs delivered
 * to CloudWatch Logs for the same traffic. Pure arithmetic, so it is tested.
 */
import { MODEL_INPUTS, PRICES, VENDED_LOG_TIERS } from './prices.js';

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

/** What the model projects. */
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

/** VPC Flow Logs to CloudWatch Logs for the same active clients. */
export interface FlowLogsProjection {
  recordsPerSecond: number;
  gbPerMonth: number;
  monthly: { delivery: number; storage: number; activeSetQueries: number; total: number };
}

const SECONDS_PER_MONTH = MODEL_INPUTS.hoursPerMonth.value * 3600;
const GB = 1024 ** 3;

/** Expected non-empty buckets when `lines` lines fall uniformly into `buckets` buckets. */
export function expectedBuckets(lines: number, buckets: number): number {
  if (lines <= 0) return 0;
  return buckets * (1 - (1 - 1 / buckets) ** lines);
}

/** Cost of `gb` GB delivered as vended logs under the tiered price. */
export function vendedLogsCost(
  gb: number,
  tiers: readonly (readonly [number, number])[] = VENDED_LOG_TIERS,
): number {
  let cost = 0;
  let from = 0;
  for (const [upTo, price] of tiers) {
    if (gb <= from) break;
    cost += (Math.min(gb, upTo) - from) * price;
    from = upTo;
  }
  return cost;
}

/** Projects shards, concurrency, writes and monthly cost for a fleet. */
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
      MODEL_INPUTS.aggregateMemoryGb.value *
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

/**
 * VPC Flow Logs (shortest interval) into CloudWatch Logs for the same active
 * clients, kept a month, with one Logs Insights query a minute over the last
 * `windowSeconds` to get the active set (what udpwatch's API and alarms give).
 */
export function projectFlowLogs(activeClients: number, windowSeconds = 300): FlowLogsProjection {
  const interval = MODEL_INPUTS.flowLogIntervalSeconds.value;
  const recordsPerSecond =
    (activeClients * MODEL_INPUTS.flowLogRecordsPerClientInterval.value) / interval;
  const gbPerMonth =
    (recordsPerSecond * MODEL_INPUTS.flowLogRecordBytes.value * SECONDS_PER_MONTH) / GB;
  const delivery = vendedLogsCost(gbPerMonth);
  const storage =
    gbPerMonth * MODEL_INPUTS.flowLogCompression.value * PRICES.cloudWatchLogsStorageGbMonth.value;
  const queriesPerMonth = SECONDS_PER_MONTH / 60;
  const gbPerQuery = (gbPerMonth * windowSeconds) / SECONDS_PER_MONTH;
  const activeSetQueries =
    queriesPerMonth * gbPerQuery * PRICES.cloudWatchLogsInsightsGbScanned.value;
  return {
    recordsPerSecond,
    gbPerMonth,
    monthly: { delivery, storage, activeSetQueries, total: delivery + storage + activeSetQueries },
  };
}
