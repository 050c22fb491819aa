/**
 * The four functions and what drives them: the aggregator reads the stream
 * through an event source mapping (failed batches are bisected, then land in
 * an encrypted queue), the query function serves the API (wired in
 * query-api.ts), the summarize function runs every minute on an EventBridge
 * schedule, one run at a time, and the roll-up function builds the hourly
 * roll-ups it marks as due, on its own schedule so that a long hour never
 * delays a minute's summary. Each role gets only the table actions its
 * function performs.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Stream } from 'aws-cdk-lib/aws-kinesis';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { KinesisEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  AGGREGATE_EVENT_SOURCE,
  aggregateMaxRecordAgeSeconds,
  ENV,
  RESOURCE_NAMES,
  ROLLUP_SCHEDULE_MINUTES,
  ROLLUP_TIMEOUT_MINUTES,
} from '../contract/resources.js';
import { BundledFunction, type BundledFunctionProps } from './bundled-function.js';
import { CURSOR_KEY_STAGES, CursorKey } from './cursor-key.js';
import { logGroupName } from './log-key.js';

/**
 * Table actions by function, exactly what its code calls; every one on the
 * table's ARN (there is no index). The aggregator puts blocks, marks and
 * heartbeats with a condition and moves a service's lastSeen forward with a
 * conditional UpdateItem (refreshService); it never reads an item. The
 * summarizer reads blocks by Query, puts summaries and roll-up marks, sets
 * each summary's minute in its hour of counts (UpdateItem), and deletes the
 * late marks it has handled. The roll-up function reads blocks
 * and marks by Query, puts roll-up parts, records a shard done on its mark
 * (UpdateItem), and deletes finished marks and parts of a replaced set. The
 * query function only runs Queries (and lists the stack's alarms). No Scan anywhere, no batch operations,
 * no GetItem.
 */
export const TABLE_ACTIONS = {
  aggregate: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
  summarize: ['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
  query: ['dynamodb:Query'],
  rollup: ['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
} as const satisfies Record<
  Exclude<BundledFunctionProps['name'], 'cursor-rotation'>,
  readonly string[]
>;

/**
 * The summarizer's size. Each run reads the active window's blocks of every
 * busy service (window minutes x BLOCK_SHARDS Queries each), inflates them
 * and merges them per endpoint: at 1,000 agents x 1,000 endpoints that is
 * about a million endpoints, a few hundred MB of objects and CPU-bound
 * inflate/merge work. 2 GB holds the merged window beside the decoded parts
 * and buys more than one vCPU (Lambda gives CPU in proportion to memory).
 * A run catching up after an outage reads up to MAX_CATCH_UP_MINUTES more:
 * hence 5 minutes. Reserved concurrency 1 makes such a long run delay the
 * next tick instead of racing it on the same summary items.
 */
const SUMMARIZE_SIZE = { memorySize: 2048, timeout: Duration.minutes(5) } as const;

/** Settings of the functions. */
export interface FunctionsProps {
  namePrefix: string;
  stream: Stream;
  table: Table;
  logRetention: RetentionDays;
  /** Encrypts the functions' log groups. */
  logKey: IKey;
  logLevel: string;
  activeWindowSeconds: number;
  retentionHours: number;
  /** The stream's retention: failed batches are retried until shortly before it . */
  streamRetentionHours: number;
}

/** The aggregate, query and summarize functions with their triggers. */
export class Functions extends Construct {
  readonly aggregate: BundledFunction;
  readonly query: BundledFunction;
  readonly summarize: BundledFunction;
  readonly rollup: BundledFunction;
  /** Where the event source mapping puts batches it gave up on. */
  readonly onFailureQueue: Queue;
  /** Signs the query API's pagination cursors, rotated. */
  readonly cursorKey: CursorKey;

  constructor(scope: Construct, id: string, props: FunctionsProps) {
    super(scope, id);
    const { table } = props;
    const stackName = Stack.of(this).stackName;
    const common = {
      logKey: props.logKey,
      logRetention: props.logRetention,
      logLevel: props.logLevel,
    };
    const tableEnvironment = {
      [ENV.table]: table.tableName,
      [ENV.activeWindow]: String(props.activeWindowSeconds),
      [ENV.retentionHours]: String(props.retentionHours),
    };

    // --- aggregate: stream -> table -------------------------------------
    this.aggregate = new BundledFunction(this, 'Aggregate', {
      ...common,
      name: 'aggregate',
      logGroupName: logGroupName(stackName, 'aggregate'),
      description: 'Stores connection logs from Kinesis as sealed activity blocks',
      // 512 MB: a batch is a few hundred small records (bench aggregator: at most
      // ~0.1 MB of resident memory per record; an event is 6 MB at most). The
      // work is CPU-bound, so 1 GB would only finish sooner for the same
      // GB-seconds; at 1,000 hosts x 1,000 endpoints an invocation takes ~2 s of
      // its 5 s batch window (bench scale-model). Raise it if IteratorAge grows.
      memorySize: 512,
      timeout: Duration.minutes(2),
      environment: { ...tableEnvironment, [ENV.stream]: props.stream.streamName },
    });
    allowTable(this.aggregate, table, TABLE_ACTIONS.aggregate);

    this.onFailureQueue = new Queue(this, 'OnFailureQueue', {
      queueName: `${props.namePrefix}${RESOURCE_NAMES.onFailureQueue}`,
      // SQS-managed keys: the messages hold only shard and sequence ranges
      // (the records stay in the stream), and the function needs no KMS grant.
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.onFailureQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the terminal failure destination of the Kinesis event source ' +
        'mapping; its depth has an alarm, and a queue behind it would only move the problem.',
    });
    this.aggregate.function.addEventSource(
      new KinesisEventSource(props.stream, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: AGGREGATE_EVENT_SOURCE.batchSize,
        maxBatchingWindow: Duration.seconds(AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds),
        parallelizationFactor: AGGREGATE_EVENT_SOURCE.parallelizationFactor,
        reportBatchItemFailures: true,
        bisectBatchOnError: AGGREGATE_EVENT_SOURCE.bisectBatchOnError,
        retryAttempts: AGGREGATE_EVENT_SOURCE.retryAttempts,
        maxRecordAge: Duration.seconds(aggregateMaxRecordAgeSeconds(props.streamRetentionHours)),
        onFailure: new SqsDlq(this.onFailureQueue),
      }),
    );

    // --- query: API -> table (read only) --------------------------------
    this.cursorKey = new CursorKey(this, 'CursorKey', {
      ...common,
      logGroupName: logGroupName(stackName, 'cursor-rotation'),
    });
    this.query = new BundledFunction(this, 'Query', {
      ...common,
      name: 'query',
      description: 'Answers the udpwatch HTTP API from the stored blocks and summaries',
      memorySize: 512,
      timeout: Duration.seconds(10),
      logGroupName: logGroupName(stackName, 'query'),
      // The secret's ARN only: the function reads the keys at run time, so a
      // rotation needs no redeploy.
      environment: {
        ...tableEnvironment,
        [ENV.cursorSecret]: this.cursorKey.secret.secretArn,
        [ENV.alarmPrefix]: `${stackName}-`,
      },
    });
    // GET /v1/alarms: DescribeAlarms takes alarm ARNs as its resource, so only
    // this stack's alarms (their names start with the stack name), never the account's.
    this.query.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['cloudwatch:DescribeAlarms'],
        resources: [
          Stack.of(this).formatArn({
            service: 'cloudwatch',
            resource: 'alarm',
            resourceName: `${stackName}-*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    Validations.of(this.query.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:${stackName}-*]`,
      reason:
        "DescribeAlarms by name prefix: the wildcard covers only the stack's own alarms (every name starts with the stack name), read only",
    });
    // Only the stages that sign and verify; AWSPENDING is the rotation's business.
    this.query.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.cursorKey.secret.secretArn],
        conditions: {
          StringEquals: { 'secretsmanager:VersionStage': CURSOR_KEY_STAGES },
        },
      }),
    );
    allowTable(this.query, table, TABLE_ACTIONS.query);

    // --- summarize: schedule -> table -> CloudWatch (EMF via its logs) --
    this.summarize = new BundledFunction(this, 'Summarize', {
      ...common,
      name: 'summarize',
      logGroupName: logGroupName(stackName, 'summarize'),
      description: 'Summarizes each complete minute per service and publishes client counts',
      ...SUMMARIZE_SIZE,
      environment: tableEnvironment,
      reservedConcurrentExecutions: 1,
      // A tick that finds the previous run still going waits at most this
      // long (the shortest Lambda allows) and is then dropped: the next tick
      // summarizes the newest complete minute anyway, so none queue up.
      maxEventAge: Duration.minutes(1),
      // A failed run is followed by the next tick a minute later; retrying
      // would only run behind it.
      retryAttempts: 0,
    });
    allowTable(this.summarize, table, TABLE_ACTIONS.summarize);
    new Rule(this, 'SummarizeSchedule', {
      description: 'Runs the udpwatch summarize function every minute',
      // Summaries are per minute, so is the schedule.
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [new LambdaFunction(this.summarize.function, { retryAttempts: 0 })],
    });

    // --- rollup: schedule -> table (the hours the summarizer marked) ------
    this.rollup = new BundledFunction(this, 'Rollup', {
      ...common,
      name: 'rollup',
      logGroupName: logGroupName(stackName, 'rollup'),
      description: 'Builds the hourly roll-ups of the stored blocks that are due',
      // The size of the summarizer: a shard of an hour is 60 minutes of its blocks.
      memorySize: SUMMARIZE_SIZE.memorySize,
      timeout: Duration.minutes(ROLLUP_TIMEOUT_MINUTES),
      environment: tableEnvironment,
      // One run at a time: two would build the same shard twice (harmless, but paid).
      reservedConcurrentExecutions: 1,
      maxEventAge: Duration.minutes(1),
      // The marks stay until built, so the next run picks up what a failed one left.
      retryAttempts: 0,
    });
    allowTable(this.rollup, table, TABLE_ACTIONS.rollup);
    new Rule(this, 'RollupSchedule', {
      description: 'Runs the udpwatch roll-up function',
      schedule: Schedule.rate(Duration.minutes(ROLLUP_SCHEDULE_MINUTES)),
      targets: [new LambdaFunction(this.rollup.function, { retryAttempts: 0 })],
    });
  }
}

/** Lets a function perform exactly `actions` on the table, by its ARN. */
function allowTable(target: BundledFunction, table: Table, actions: readonly string[]): void {
  target.role.addToPrincipalPolicy(
    new PolicyStatement({ actions: [...actions], resources: [table.tableArn] }),
  );
}
