/**
 * The deployment's settings, read from CDK context (`cdk.json` "context" or
 * `cdk synth -c key=value`) and validated once, so every construct below gets
 * typed values and a typo fails the synth with a message naming the key.
 */
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { z } from 'zod';
import { DEFAULTS } from '../contract/resources.js';
import {
  type ServiceAlarmBounds,
  ServiceAlarmsSchema,
  TREAT_MISSING_DATA,
} from '../contract/service-alarms.js';

/** Retention periods CloudWatch Logs accepts, taken from the CDK enum so they cannot drift. */
const LOG_RETENTION_DAYS = Object.values(RetentionDays).filter(
  (days): days is number => typeof days === 'number',
);

/** `-c key=value` always passes strings; cdk.json passes JSON types. Accept both. */
const fromString = <T extends z.ZodType>(parse: (raw: string) => unknown, schema: T) =>
  z.preprocess((raw) => (typeof raw === 'string' ? parse(raw.trim()) : raw), schema);

/** A number written as a string becomes a number; anything else stays as it was, for zod to name. */
const toNumber = (raw: string) => {
  const value = Number(raw);
  return raw === '' || Number.isNaN(value) ? raw : value;
};

const integer = (min: number, max: number) =>
  fromString(toNumber, z.number().int().min(min).max(max));

const flag = fromString(
  (raw) => (raw === 'true' ? true : raw === 'false' ? false : raw),
  z.boolean({ error: 'expected true or false' }),
);

/** Per-service alarms (schema shared with local mode), also given as a JSON string with -c. */
const ServiceAlarmsContext = fromString(
  (raw) => parseJsonContext('serviceAlarms', raw),
  ServiceAlarmsSchema,
);

/**
 * The stream's capacity by default: provisioned, 2 shards (2 MB/s and 2,000
 * records/s of writes). A fleet of 1,000 hosts x 1,000 endpoints writes
 * ~0.3 MB/s in ~160 records/s (bench scale-model), so 2 shards leave ~6x
 * headroom at ~$25 a month, where on-demand costs ~$130 (its stream-hour and
 * per-KB charges). docs/deploy.md gives the sizing rule for larger fleets.
 */
export const STREAM_DEFAULTS = { mode: 'provisioned', shardCount: 2 } as const;

/** Stream capacity modes the `streamMode` context key accepts. */
export const STREAM_MODES = ['provisioned', 'on-demand'] as const;

/**
 * The table's shipped capacity: provisioned read and write capacity under
 * target-tracking auto scaling. The load is steady (every agent writes its
 * blocks once a minute, spread over the minute), which is the case where
 * provisioned capacity costs about a third of on-demand (docs/deploy.md,
 * docs/performance.md). The maximum is also a cost ceiling.
 */
export const TABLE_CAPACITY_DEFAULTS = {
  mode: 'provisioned',
  minCapacity: 5,
  maxWriteCapacity: 4_000,
  maxReadCapacity: 4_000,
  targetUtilizationPercent: 70,
} as const;

/** Table capacity modes the `tableMode` context key accepts. */
export const TABLE_MODES = ['provisioned', 'on-demand'] as const;

/** Every context key the app reads, with its default. */
export const ConfigSchema = z.strictObject({
  /** CloudFormation stack name. */
  stackName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, 'letters, digits and hyphens, starting with a letter')
    .default('Udpwatch'),
  /** Prefix for the physical resource names, so several stacks can share an account. */
  namePrefix: z
    .string()
    .regex(/^([a-z0-9][a-z0-9-]{0,30}-)?$/, 'lowercase letters, digits, hyphens, ending in "-"')
    .default(''),
  /** Production keeps the table and its data when the stack or the resource goes away. */
  production: flag.default(true),
  /** Stream capacity: provisioned shards (the default) or on-demand. */
  streamMode: z
    .enum(STREAM_MODES, { error: `expected ${STREAM_MODES.join(' or ')}` })
    .default(STREAM_DEFAULTS.mode),
  /**
   * Provisioned shards (default STREAM_DEFAULTS.shardCount); only with
   * streamMode=provisioned. After parseConfig: undefined exactly when on-demand.
   */
  shardCount: integer(1, 500).optional(),
  /** Table capacity: provisioned with auto scaling (the default) or on-demand. */
  tableMode: z
    .enum(TABLE_MODES, { error: `expected ${TABLE_MODES.join(' or ')}` })
    .default(TABLE_CAPACITY_DEFAULTS.mode),
  /** Auto scaling's ceiling for write capacity units; only with tableMode=provisioned. */
  tableMaxWriteCapacity: integer(TABLE_CAPACITY_DEFAULTS.minCapacity, 40_000).optional(),
  /** Auto scaling's ceiling for read capacity units; only with tableMode=provisioned. */
  tableMaxReadCapacity: integer(TABLE_CAPACITY_DEFAULTS.minCapacity, 40_000).optional(),
  /** How long Kinesis keeps records that the aggregator has not read yet. */
  streamRetentionHours: integer(24, 8760).default(24),
  /** Retention of the functions' and the API's logs. */
  logRetentionDays: fromString(
    toNumber,
    z.number().refine((days) => LOG_RETENTION_DAYS.includes(days), {
      error: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
    }),
  ).default(30),
  logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  activeWindowSeconds: integer(1, 86_400).default(DEFAULTS.activeWindowSeconds),
  retentionHours: integer(1, 24 * 365).default(DEFAULTS.retentionHours),
  /** Steady-state requests per second the API stage accepts. */
  apiRateLimit: integer(1, 10_000).default(50),
  /** Burst of requests the API stage accepts. */
  apiBurstLimit: integer(1, 5_000).default(100),
  serviceAlarms: ServiceAlarmsContext.default({}),
  /** Periods of one minute an alarm looks at (unless a service says otherwise). */
  alarmEvaluationPeriods: integer(1, 1440).default(5),
  /** Breaching periods out of those that fire the alarm; default all of them. */
  alarmDatapointsToAlarm: integer(1, 1440).optional(),
  /** Default: a minimum alarm treats no data as breaching, a maximum alarm as not breaching. */
  alarmTreatMissingData: z.enum(TREAT_MISSING_DATA).optional(),
  /** Address subscribed to the alarm topic (needs confirming by mail). */
  alarmEmail: z.email().optional(),
  /** Alarm when fewer agents than this have sent a heartbeat in the active window. */
  minAgentsReporting: integer(0, 1_000_000).default(1),
  /** Alarm when the aggregator lags the stream by more than this. */
  iteratorAgeAlarmSeconds: integer(60, 7 * 86_400).default(300),
  /** Alarm when the API answers more 5xx than this in five minutes. */
  api5xxAlarmThreshold: integer(0, 1_000_000).default(5),
  /** Also create an EC2 role and instance profile with the agent policy attached. */
  agentInstanceProfile: flag.default(false),
});

/**
 * Keys earlier versions read and this one does not, with what to do instead.
 * Given one, the synth fails instead of silently ignoring it.
 */
export const REMOVED_KEYS: Readonly<Record<string, string>> = {
  batchingWindowSeconds:
    'removed: each block is one table write whatever the batching window, so the window ' +
    'is no longer a cost setting; the event source uses the fixed contract value ' +
    '(AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds). Drop the key.',
};

/** The validated settings of one deployment. */
export type Config = z.infer<typeof ConfigSchema>;
/** One service's alarm bounds. */
export type { ServiceAlarmBounds };
/** What an alarm does with a period that has no data. */
export type TreatMissingDataName = (typeof TREAT_MISSING_DATA)[number];

/** A context value that is not what the app expects; the message names the key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function parseJsonContext(key: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new ConfigError(
      `context "${key}": not valid JSON (${(error as Error).message}); ` +
        `expected e.g. '{"dns":{"min":10,"max":50000}}'`,
    );
  }
}

/**
 * Validates the context values the app reads (other keys, such as CDK feature
 * flags, are ignored) and fills in defaults; throws ConfigError listing every
 * bad key.
 */
export function parseConfig(context: Record<string, unknown>): Config {
  const removed = Object.keys(REMOVED_KEYS)
    .filter((key) => context[key] !== undefined)
    .map((key) => `  context "${key}": ${REMOVED_KEYS[key]}`);
  if (removed.length > 0) throw new ConfigError(`invalid CDK context:\n${removed.join('\n')}`);
  const ours = Object.fromEntries(
    Object.keys(ConfigSchema.shape)
      .filter((key) => context[key] !== undefined)
      .map((key) => [key, context[key]]),
  );
  const result = ConfigSchema.safeParse(ours);
  if (result.success) return withTableCapacity(withStreamCapacity(result.data));
  const lines = result.error.issues.map(
    (issue) => `  context "${issue.path.map(String).join('.')}": ${issue.message}`,
  );
  throw new ConfigError(`invalid CDK context:\n${lines.join('\n')}`);
}

/** Fills in the default shard count of a provisioned stream; refuses shards for an on-demand one. */
function withStreamCapacity(config: Config): Config {
  if (config.streamMode === 'on-demand') {
    if (config.shardCount !== undefined) {
      throw new ConfigError(
        `invalid CDK context:\n  context "shardCount": ${config.shardCount} shards given with ` +
          'streamMode=on-demand, which sizes itself; drop shardCount or use streamMode=provisioned',
      );
    }
    return config;
  }
  return { ...config, shardCount: config.shardCount ?? STREAM_DEFAULTS.shardCount };
}

/** Fills in the auto scaling ceilings of a provisioned table; refuses them for an on-demand one. */
function withTableCapacity(config: Config): Config {
  if (config.tableMode === 'on-demand') {
    const given = (['tableMaxWriteCapacity', 'tableMaxReadCapacity'] as const).filter(
      (key) => config[key] !== undefined,
    );
    if (given.length > 0) {
      throw new ConfigError(
        `invalid CDK context:\n${given
          .map(
            (key) =>
              `  context "${key}": ${config[key]} given with tableMode=on-demand, which has no ` +
              'provisioned capacity; drop it or use tableMode=provisioned',
          )
          .join('\n')}`,
      );
    }
    return config;
  }
  return {
    ...config,
    tableMaxWriteCapacity: config.tableMaxWriteCapacity ?? TABLE_CAPACITY_DEFAULTS.maxWriteCapacity,
    tableMaxReadCapacity: config.tableMaxReadCapacity ?? TABLE_CAPACITY_DEFAULTS.maxReadCapacity,
  };
}

/** The table's auto scaling ceilings, or undefined for an on-demand table. */
export function provisionedTableCapacity(
  config: Config,
): { maxWriteCapacity: number; maxReadCapacity: number } | undefined {
  if (config.tableMode === 'on-demand') return undefined;
  return {
    maxWriteCapacity: config.tableMaxWriteCapacity ?? TABLE_CAPACITY_DEFAULTS.maxWriteCapacity,
    maxReadCapacity: config.tableMaxReadCapacity ?? TABLE_CAPACITY_DEFAULTS.maxReadCapacity,
  };
}
