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
  /** Key that signs pagination cursors (local mode and tests; deployed: cursorSecret). */
  cursorKey: 'UDPWATCH_CURSOR_KEY',
  /** Secrets Manager secret (ARN) holding the cursor keys: AWSCURRENT signs, AWSPREVIOUS verifies. */
  cursorSecret: 'UDPWATCH_CURSOR_SECRET',
  /** Endpoint override (local mode) for DynamoDB. */
  dynamodbEndpoint: 'UDPWATCH_DYNAMODB_ENDPOINT',
  /** Prefix of the stack's CloudWatch alarm names (the stack name and `-`): the query function lists them. */
  alarmPrefix: 'UDPWATCH_ALARM_PREFIX',
} as const;

/** Name of a client-count alarm: the stack's prefix, service, metric, direction and threshold. */
export function clientAlarmName(
  prefix: string,
  service: string,
  metric: string,
  below: boolean,
  threshold: number,
): string {
  return `${prefix}-${service}-${metric}-${below ? 'below' : 'above'}-${threshold}`;
}

/** Name of an operations alarm of the stack, e.g. `udpwatch-AgentLoss`. */
export function operationsAlarmName(prefix: string, name: string): string {
  return `${prefix}-${name}`;
}

/** Metric names the functions publish (EMF), watched by alarms and the dashboard. */
export const METRICS = {
  activeClients: 'ActiveClients',
  activeClientIps: 'ActiveClientIPs',
  agentsReporting: 'AgentsReporting',
  /**
   * What the stored agents' latest heartbeats say they lost, each a total
   * across its restarts (spool full, memory bound, hook tables), summed
   * (summarize); an alarm fires while it grows.
   */
  agentsDropped: 'AgentsDropped',
  serviceDimension: 'Service',
  badLines: 'BadLines',
  badRecords: 'BadRecords',
  /** A block whose key already held different content (kept under conflictKey, never overwritten; aggregate). */
  blockConflicts: 'BlockConflicts',
  /** Per service: active endpoints that sent packets and got none back (summarize). */
  oneWayClients: 'OneWayClients',
  /** Per service: datagrams the kernel dropped on its sockets in the summarized minute (summarize). */
  socketDrops: 'SocketDrops',
  /** Stored block or roll-up parts a reader could not decode and skipped (summarize). */
  badBlockParts: 'BadBlockParts',
  /** Service-hours whose roll-up is due and not built yet, after a roll-up run (rollup). */
  rollupsPending: 'RollupsPending',
} as const;

/** Minutes between two runs of the roll-up function (its schedule rule, and local mode). */
export const ROLLUP_SCHEDULE_MINUTES = 5;
/** The roll-up function's timeout, minutes (Lambda's longest). */
export const ROLLUP_TIMEOUT_MINUTES = 15;

/** Defaults that the agent, the functions and the API agree on. */
export const DEFAULTS = {
  activeWindowSeconds: 300,
  retentionHours: 24,
  refreshIntervalSeconds: 60,
} as const;

/** An attribute of a key, as DynamoDB types it. */
export interface KeyAttribute {
  name: string;
  type: 'S' | 'N';
}

/**
 * The single table: generic string keys and no secondary index. Every read is
 * a Query on an exact partition key (see `table-keys.ts` for the layout), and
 * every write a PutItem of an immutable item (or the small services, agents
 * and summary items), so there is nothing to keep in step.
 */
export const TABLE = {
  partitionKey: { name: 'pk', type: 'S' },
  sortKey: { name: 'sk', type: 'S' },
  ttlAttribute: 'ttl',
} as const satisfies {
  partitionKey: KeyAttribute;
  sortKey: KeyAttribute;
  ttlAttribute: string;
};

/** Attribute names of a stored block part (and roll-up part). */
export const BLOCK_ATTRIBUTES = {
  /** The part's encoded bytes, exactly as they crossed Kinesis (Binary). */
  data: 'd',
  /** Content hash of `data` (hex): a re-put of the same key must carry the same hash. */
  hash: 'h',
} as const;

/**
 * Extra attributes of a roll-up part (besides the block attributes): a roll-up
 * of one (service, hour, shard) is the set of parts 0..parts-1 sharing one
 * `set` id; a reader uses it only when every part is there with that id.
 */
export const ROLLUP_ATTRIBUTES = {
  /** Per endpoint, the second within its first and within its last minute (Binary, 2 bytes each). */
  seconds: 't',
  /** Number of parts of this roll-up set. */
  parts: 'parts',
  /** Content id of the whole set (hash over its parts' hashes). */
  set: 'g',
} as const;

/**
 * Kinesis event source settings shared by the CDK event source mapping and the
 * local poller. Every write of the aggregate function is idempotent, so a
 * batch that fails (DynamoDB down or throttling) is retried until its records
 * are about to leave the stream, never given up after a few attempts; what
 * reaches the on-failure queue is what could not succeed in that time, and
 * `udpwatch replay-failures` can still re-read it for the replay window.
 */
export const AGGREGATE_EVENT_SOURCE = {
  batchSize: 1000,
  // Each block is one PutItem whatever the window, so the window only trades
  // Lambda invocations against how soon an early part is visible.
  maxBatchingWindowSeconds: 5,
  /** -1: retry until the record is maxRecordAge old. */
  retryAttempts: -1,
  /** Records still in the stream this long after they are given up, to be replayed. */
  replayWindowSeconds: 4 * 3600,
  parallelizationFactor: 2,
  // A batch whose handler fails is split in two and each half retried on its
  // own, so one poison record ends up alone in the on-failure queue.
  bisectBatchOnError: true,
} as const;

/** The event source's maximum record age for a stream retention: the retention less the replay window (60 s .. 7 days). */
export function aggregateMaxRecordAgeSeconds(streamRetentionHours: number): number {
  const age = streamRetentionHours * 3600 - AGGREGATE_EVENT_SOURCE.replayWindowSeconds;
  return Math.min(7 * 24 * 3600, Math.max(60, age));
}
