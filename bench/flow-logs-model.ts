/**
 * VPC Flow Logs for the same active clients, the managed alternative udpwatch
 * is compared with: the shortest (1-minute) aggregation interval, delivered
 * to CloudWatch Logs (queried with Logs Insights) or to S3 (queried with
 * Athena), kept as long as udpwatch keeps its data, with one query a minute
 * over the active window to get the active set (what udpwatch's summaries
 * give). Pure arithmetic, so it is tested.
 */
import { MODEL_INPUTS, PRICES, VENDED_LOG_S3_TIERS, VENDED_LOG_TIERS } from './prices.js';

/** What one flow-logs destination costs a month. */
export interface FlowLogsProjection {
  recordsPerSecond: number;
  /** GB ingested (delivered) a month. */
  gbPerMonth: number;
  monthly: {
    delivery: number;
    storage: number;
    requests: number;
    activeSetQueries: number;
    total: number;
  };
}

/** Inputs shared by both destinations. */
export interface FlowLogsInputs {
  activeClients: number;
  hosts: number;
  /** Hours the logs are kept (udpwatch's retention, for a like-for-like store). */
  retentionHours: number;
  /** Active window the once-a-minute active-set query scans (s). */
  windowSeconds: number;
}

const SECONDS_PER_MONTH = MODEL_INPUTS.hoursPerMonth.value * 3600;
const HOURS_PER_MONTH = MODEL_INPUTS.hoursPerMonth.value;
const GB = 1024 ** 3;
const QUERIES_PER_MONTH = SECONDS_PER_MONTH / 60;

/** Cost of `gb` GB delivered as vended logs under a tiered price ([upper bound GB, USD/GB] in order). */
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

function volume(i: FlowLogsInputs): { recordsPerSecond: number; gbPerMonth: number } {
  const interval = MODEL_INPUTS.flowLogIntervalSeconds.value;
  const recordsPerSecond =
    (i.activeClients * MODEL_INPUTS.flowLogRecordsPerClientInterval.value) / interval;
  const gbPerMonth =
    (recordsPerSecond * MODEL_INPUTS.flowLogRecordBytes.value * SECONDS_PER_MONTH) / GB;
  return { recordsPerSecond, gbPerMonth };
}

/** Flow logs into CloudWatch Logs, Logs Insights for the active set. */
export function projectFlowLogsToCloudWatch(i: FlowLogsInputs): FlowLogsProjection {
  const { recordsPerSecond, gbPerMonth } = volume(i);
  const delivery = vendedLogsCost(gbPerMonth, VENDED_LOG_TIERS);
  // Logs kept `retentionHours`: the stored (compressed) volume is that many hours of ingestion.
  const storage =
    ((gbPerMonth * i.retentionHours) / HOURS_PER_MONTH) *
    MODEL_INPUTS.flowLogCompression.value *
    PRICES.cloudWatchLogsStorageGbMonth.value;
  const gbPerQuery = (gbPerMonth * i.windowSeconds) / SECONDS_PER_MONTH;
  const activeSetQueries =
    QUERIES_PER_MONTH * gbPerQuery * PRICES.cloudWatchLogsInsightsGbScanned.value;
  return {
    recordsPerSecond,
    gbPerMonth,
    monthly: {
      delivery,
      storage,
      requests: 0,
      activeSetQueries,
      total: delivery + storage + activeSetQueries,
    },
  };
}

/** Flow logs into S3 (gzip'd text files), Athena for the active set. */
export function projectFlowLogsToS3(i: FlowLogsInputs): FlowLogsProjection {
  const { recordsPerSecond, gbPerMonth } = volume(i);
  const delivery = vendedLogsCost(gbPerMonth, VENDED_LOG_S3_TIERS);
  const compression = MODEL_INPUTS.flowLogCompression.value;
  const storage =
    ((gbPerMonth * i.retentionHours) / HOURS_PER_MONTH) *
    compression *
    PRICES.s3StandardStorageGbMonth.value;
  const puts = i.hosts * MODEL_INPUTS.flowLogS3FilesPerHostHour.value * HOURS_PER_MONTH;
  const requests = (puts / 1000) * PRICES.s3PutRequestsPerThousand.value;
  // Athena scans the compressed files of the window, at least 10 MB a query.
  const tbPerQuery = Math.max(
    (gbPerMonth * compression * i.windowSeconds) / SECONDS_PER_MONTH / 1024,
    10 / 1024 / 1024,
  );
  const activeSetQueries = QUERIES_PER_MONTH * tbPerQuery * PRICES.athenaTbScanned.value;
  return {
    recordsPerSecond,
    gbPerMonth,
    monthly: {
      delivery,
      storage,
      requests,
      activeSetQueries,
      total: delivery + storage + requests + activeSetQueries,
    },
  };
}
