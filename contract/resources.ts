/**
 * Names and shapes of the AWS resources, defined once for the CDK app, the
 * local runtime, the functions and the agent, so local mode is the deployed
 * shape and not a copy of it.
 */

/** Default names; a deployed stack may prefix them, and passes the real ones to functions by environment. */
export const RESOURCE_NAMES = {
  stream: 'udpwatch-connection-logs',
  table: 'udpwatch-clients',
  onFailureQueue: 'udpwatch-aggregate-failures',
  alarmTopic: 'udpwatch-alarms',
  metricsNamespace: 'udpwatch',
  powertoolsService: 'udpwatch',
} as const;

/** Environment variables through which functions learn where their resources are. */
export const ENV = {
  table: 'UDPWATCH_TABLE',
  stream: 'UDPWATCH_STREAM',
  /** Seconds of inactivity after which a client is no longer active (default 300). */
  activeWindow: 'UDPWATCH_ACTIVE_WINDOW',
  /** Hours items are kept after their last packet before TTL removes them (default 24). */
  retentionHours: 'UDPWATCH_RETENTION_HOURS',
  /** Key that signs pagination cursors. */
  cursorKey: 'UDPWATCH_CURSOR_KEY',
  /** Endpoint override (local mode) for DynamoDB. */
  dynamodbEndpoint: 'UDPWATCH_DYNAMODB_ENDPOINT',
} as const;

/** Metric names published by the metrics function, watched by alarms. */
export const METRICS = {
  activeClients: 'ActiveClients',
  activeClientIps: 'ActiveClientIPs',
  agentsReporting: 'AgentsReporting',
  serviceDimension: 'Service',
  badLines: 'BadLines',
  badRecords: 'BadRecords',
} as const;

/** Defaults that the agent, the functions and the API agree on. */
export const DEFAULTS = {
  activeWindowSeconds: 300,
  retentionHours: 24,
  refreshIntervalSeconds: 60,
} as const;

/** An attribute of a key or index, as DynamoDB types it. */
export interface KeyAttribute {
  name: string;
  type: 'S' | 'N';
}

/** A global secondary index of the table. */
export interface IndexDefinition {
  name: string;
  partitionKey: KeyAttribute;
  sortKey: KeyAttribute;
  /** KEYS_ONLY: the index holds table and index keys, nothing else. */
  projection: 'KEYS_ONLY' | 'ALL';
}

/**
 * Attribute of client items that both indexes sort by: the start of the
 * activity bucket holding the item's lastSeen (see `activityBucket` in
 * table-keys.ts).
 */
export const ACTIVE_BUCKET_ATTRIBUTE = 'activeBucket';

/**
 * The indexes' sort key: the activity bucket followed by the item's own key
 * (`activityKey` in table-keys.ts). It orders like the bucket, changes only
 * when the bucket does, and is unique, so no two index entries of a partition
 * ever tie (paging over ties is where emulators and tie-breaks go wrong).
 */
export const ACTIVE_KEY_ATTRIBUTE = 'activeKey';

/**
 * The single table: generic string keys, two indexes sorted by activity
 * bucket so "active since T" reads only the active part of a partition, never
 * a Scan. The indexes project keys only: an update that leaves the bucket
 * alone writes no index entry. What each key holds is laid out in `table-keys.ts`.
 */
export const TABLE = {
  partitionKey: { name: 'pk', type: 'S' },
  sortKey: { name: 'sk', type: 'S' },
  ttlAttribute: 'ttl',
  indexes: [
    {
      name: 'byActivity',
      partitionKey: { name: 'gsi1pk', type: 'S' },
      sortKey: { name: ACTIVE_KEY_ATTRIBUTE, type: 'S' },
      projection: 'KEYS_ONLY',
    },
    {
      name: 'byClientIp',
      partitionKey: { name: 'gsi2pk', type: 'S' },
      sortKey: { name: ACTIVE_KEY_ATTRIBUTE, type: 'S' },
      projection: 'KEYS_ONLY',
    },
  ],
} as const satisfies {
  partitionKey: KeyAttribute;
  sortKey: KeyAttribute;
  ttlAttribute: string;
  indexes: readonly IndexDefinition[];
};

/** Kinesis event source settings shared by the CDK event source mapping and the local poller. */
export const AGGREGATE_EVENT_SOURCE = {
  batchSize: 1000,
  // One write per active client per window: the window is what bounds DynamoDB cost
  // (see docs/store.md). Deployments may shorten it by context.
  maxBatchingWindowSeconds: 60,
  retryAttempts: 10,
  maxRecordAgeSeconds: 24 * 3600,
  parallelizationFactor: 2,
} as const;
