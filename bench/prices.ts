/**
 * Prices and fixed inputs of the scale model, each with where it comes from.
 * Region us-east-1, on-demand list prices, no free tier, no savings plans.
 *
 * Written down on 2026-11-26. The official AWS pricing pages could not be
 * read from the machine that wrote this file; the figures below are AWS's
 * published list prices as known to the authors and as quoted by the
 * secondary sources named next to them. Check them against the official pages
 * before quoting a cost to anyone.
 */

/** A price or input with its provenance. */
export interface Sourced {
  value: number;
  unit: string;
  source: string;
  /** When the figure was written down (defaults to PRICES_AS_OF). */
  asOf?: string;
}

/** When the first figures were written down; later ones carry their own `asOf`. */
export const PRICES_AS_OF = '2026-11-26';

/** When the CloudWatch metric/alarm, S3 and Athena figures were added. */
const ADDED = '2026-12-02';

/** Official pages to check the figures against. */
export const PRICE_PAGES = {
  kinesis: 'https://aws.amazon.com/kinesis/data-streams/pricing/',
  lambda: 'https://aws.amazon.com/lambda/pricing/',
  dynamodb: 'https://aws.amazon.com/dynamodb/pricing/on-demand/',
  dynamodbProvisioned: 'https://aws.amazon.com/dynamodb/pricing/provisioned/',
  cloudwatch: 'https://aws.amazon.com/cloudwatch/pricing/',
  vpcFlowLogs: 'https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs.html',
  vpcFlowLogsS3: 'https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-s3.html',
  s3: 'https://aws.amazon.com/s3/pricing/',
  athena: 'https://aws.amazon.com/athena/pricing/',
} as const;

/** us-east-1 on-demand prices. */
export const PRICES = {
  kinesisOnDemandStreamHour: {
    value: 0.04,
    unit: 'USD per stream-hour',
    source: `${PRICE_PAGES.kinesis} (on-demand; unverified here, check)`,
  },
  kinesisOnDemandGbIn: {
    value: 0.08,
    unit: 'USD per GB written, each record rounded up to 1 KB',
    source: `${PRICE_PAGES.kinesis} (on-demand; the 1 KB rounding is quoted on that page)`,
  },
  kinesisOnDemandGbOut: {
    value: 0.04,
    unit: 'USD per GB read',
    source: `${PRICE_PAGES.kinesis} (on-demand; unverified here, check)`,
  },
  kinesisShardHour: {
    value: 0.015,
    unit: 'USD per shard-hour (provisioned)',
    source: `${PRICE_PAGES.kinesis} (provisioned; also quoted by kindatechnical.com lesson 29)`,
  },
  kinesisPutPayloadUnitsPerMillion: {
    value: 0.014,
    unit: 'USD per million 25 KB PUT payload units (provisioned)',
    source: `${PRICE_PAGES.kinesis} (provisioned; unverified here, check)`,
  },
  lambdaRequestsPerMillion: {
    value: 0.2,
    unit: 'USD per million requests',
    source: `${PRICE_PAGES.lambda} (also quoted by cloudchipr.com, Lambda pricing guide)`,
  },
  lambdaArmGbSecond: {
    value: 0.0000133334,
    unit: 'USD per GB-second, arm64, first 7.5 billion GB-s a month',
    source: `${PRICE_PAGES.lambda} (also quoted by cloudchipr.com, Lambda pricing guide)`,
  },
  dynamodbWriteRequestUnitsPerMillion: {
    value: 0.625,
    unit: 'USD per million write request units (on-demand, after the Nov 2024 reduction)',
    source: `${PRICE_PAGES.dynamodb} (also quoted by airbyte.com, DynamoDB pricing, 2025)`,
  },
  dynamodbReadRequestUnitsPerMillion: {
    value: 0.125,
    unit: 'USD per million read request units (on-demand)',
    source: `${PRICE_PAGES.dynamodb} (also quoted by airbyte.com, DynamoDB pricing, 2025)`,
  },
  dynamodbWriteCapacityUnitHour: {
    value: 0.00065,
    unit: 'USD per provisioned write capacity unit-hour',
    source: `${PRICE_PAGES.dynamodbProvisioned} (us-east-1; the same figure is quoted in several public cost calculators, 2024-2026)`,
    asOf: '2026-12-02',
  },
  dynamodbReadCapacityUnitHour: {
    value: 0.00013,
    unit: 'USD per provisioned read capacity unit-hour',
    source: `${PRICE_PAGES.dynamodbProvisioned} (us-east-1; the same figure is quoted in several public cost calculators, 2024-2026)`,
    asOf: '2026-12-02',
  },
  dynamodbStorageGbMonth: {
    value: 0.25,
    unit: 'USD per GB-month (standard table class, past the first 25 GB)',
    source: `${PRICE_PAGES.dynamodb} (unverified here, check)`,
  },
  vendedLogsToCloudWatchTiers: {
    // [GB up to which this tier applies, USD per GB]
    value: 0.5,
    unit: 'USD per GB delivered to CloudWatch Logs as vended logs (first 10 TB; then 0.25 to 30 TB, 0.10 to 50 TB, 0.05 beyond)',
    source: `${PRICE_PAGES.cloudwatch} (vended logs tab; $0.50/GB also quoted by c3x.dev, June 2026)`,
  },
  cloudWatchLogsStorageGbMonth: {
    value: 0.03,
    unit: 'USD per GB-month archived (compressed)',
    source: `${PRICE_PAGES.cloudwatch} (also quoted by c3x.dev, June 2026)`,
  },
  cloudWatchLogsInsightsGbScanned: {
    value: 0.005,
    unit: 'USD per GB scanned by Logs Insights',
    source: `${PRICE_PAGES.cloudwatch} (also quoted by c3x.dev, June 2026)`,
  },
  cloudWatchLogsIngestionGb: {
    value: 0.5,
    unit: 'USD per GB ingested into CloudWatch Logs (standard class: Lambda logs and EMF documents)',
    source: `${PRICE_PAGES.cloudwatch} (logs tab, "Collect (Data Ingestion)"; unverified here, check)`,
    asOf: ADDED,
  },
  cloudWatchCustomMetricMonth: {
    value: 0.3,
    unit: 'USD per custom metric (name + dimensions) per month, first 10,000 (EMF metrics are custom metrics)',
    source: `${PRICE_PAGES.cloudwatch} (metrics tab; unverified here, check)`,
    asOf: ADDED,
  },
  cloudWatchAlarmMonth: {
    value: 0.1,
    unit: 'USD per standard-resolution alarm metric per month',
    source: `${PRICE_PAGES.cloudwatch} (alarms tab; unverified here, check)`,
    asOf: ADDED,
  },
  cloudWatchApiRequestsPerThousand: {
    value: 0.01,
    unit: 'USD per 1,000 CloudWatch API requests (DescribeAlarms among them; no free tier counted)',
    source: `${PRICE_PAGES.cloudwatch} (API requests; unverified here, check)`,
    asOf: ADDED,
  },
  vendedLogsToS3Tiers: {
    value: 0.25,
    unit: 'USD per GB delivered to S3 as vended logs (first 10 TB; then 0.15 to 30 TB, 0.075 to 50 TB, 0.05 beyond)',
    source: `${PRICE_PAGES.cloudwatch} (vended logs tab, "Delivery to S3"; unverified here, check)`,
    asOf: ADDED,
  },
  s3StandardStorageGbMonth: {
    value: 0.023,
    unit: 'USD per GB-month, S3 Standard, first 50 TB',
    source: `${PRICE_PAGES.s3} (unverified here, check)`,
    asOf: ADDED,
  },
  s3PutRequestsPerThousand: {
    value: 0.005,
    unit: 'USD per 1,000 PUT requests, S3 Standard',
    source: `${PRICE_PAGES.s3} (unverified here, check)`,
    asOf: ADDED,
  },
  athenaTbScanned: {
    value: 5,
    unit: 'USD per TB scanned by Athena SQL queries, 10 MB minimum per query',
    source: `${PRICE_PAGES.athena} (unverified here, check)`,
    asOf: ADDED,
  },
} as const satisfies Record<string, Sourced>;

/** The vended-log tiers behind PRICES.vendedLogsToCloudWatchTiers: [upper bound in GB, USD per GB]. */
export const VENDED_LOG_TIERS: readonly (readonly [number, number])[] = [
  [10 * 1024, 0.5],
  [30 * 1024, 0.25],
  [50 * 1024, 0.1],
  [Number.POSITIVE_INFINITY, 0.05],
];

/** The vended-log tiers behind PRICES.vendedLogsToS3Tiers: [upper bound in GB, USD per GB]. */
export const VENDED_LOG_S3_TIERS: readonly (readonly [number, number])[] = [
  [10 * 1024, 0.25],
  [30 * 1024, 0.15],
  [50 * 1024, 0.075],
  [Number.POSITIVE_INFINITY, 0.05],
];

/** Fixed inputs of the model that are not prices. */
export const MODEL_INPUTS = {
  hoursPerMonth: { value: 730, unit: 'h', source: 'AWS pricing convention (8,760 h / 12)' },
  kinesisShardRecordsPerSecond: {
    value: 1000,
    unit: 'records/s per shard',
    source: 'Kinesis write limit per shard (DESIGN.md, Known traits)',
  },
  kinesisShardBytesPerSecond: {
    value: 1024 * 1024,
    unit: 'B/s per shard',
    source: 'Kinesis write limit per shard (DESIGN.md, Known traits)',
  },
  aggregateMemoryGb: {
    value: 0.5,
    unit: 'GB',
    source: 'infra/functions.ts (aggregate: 512 MB, arm64)',
    asOf: '2026-12-02',
  },
  flowLogRecordBytes: {
    value: 136,
    unit: 'B per flow log record as ingested',
    source:
      'default (version 2) format, 14 fields, ~110 B of text for a typical IPv4 record, plus 26 B per-event overhead CloudWatch Logs counts; estimate, check with a sample',
  },
  flowLogRecordsPerClientInterval: {
    value: 2,
    unit: 'records per active client per aggregation interval per ENI',
    source:
      'flow logs record each direction (5-tuple) separately: client->server and server->client (VPC user guide, flow log records)',
  },
  flowLogIntervalSeconds: {
    value: 60,
    unit: 's',
    source: 'shortest aggregation interval VPC Flow Logs offers (default is 600 s)',
  },
  flowLogCompression: {
    value: 0.15,
    unit: 'stored size / ingested size',
    source: 'estimate for archived CloudWatch Logs data; check',
  },
  flowLogS3FilesPerHostHour: {
    value: 12,
    unit: 'log files (S3 PUTs) per host ENI per hour',
    source: `flow logs to S3 publish a file per ENI about every 5 minutes (${PRICE_PAGES.vpcFlowLogsS3}); estimate`,
    asOf: ADDED,
  },
  summarizeMemoryGb: {
    value: 2,
    unit: 'GB',
    source: 'infra/functions.ts (summarize: 2048 MB, arm64)',
    asOf: ADDED,
  },
  queryMemoryGb: {
    value: 0.5,
    unit: 'GB',
    source: 'infra/functions.ts (query: 512 MB, arm64)',
    asOf: ADDED,
  },
  kinesisOnDemandMinShards: {
    value: 4,
    unit: 'shards',
    source: `an on-demand stream starts with 4 MB/s of write capacity, i.e. 4 shards (${PRICE_PAGES.kinesis}, on-demand); estimate`,
    asOf: ADDED,
  },
  dynamodbItemOverheadBytes: {
    value: 100,
    unit: 'B stored per item beyond its data',
    source: `${PRICE_PAGES.dynamodb} (storage: "100 bytes of overhead per item")`,
    asOf: ADDED,
  },
  lambdaPlatformLogBytesPerInvocation: {
    value: 350,
    unit: 'B of START/END/REPORT lines per invocation',
    source:
      'size of the three platform lines Lambda writes to CloudWatch Logs per invocation; estimate',
    asOf: ADDED,
  },
  emfDocumentBytes: {
    value: 400,
    unit: 'B per EMF document (one metric set)',
    source:
      'a Powertools EMF document with a namespace, one dimension set and a few metrics; estimate',
    asOf: ADDED,
  },
} as const satisfies Record<string, Sourced>;
