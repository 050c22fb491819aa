/**
 * The three functions and what drives them: the aggregator reads the stream
 * through an event source mapping (failed batches are bisected, then land in
 * an encrypted queue), the query function serves the API (wired in
 * query-api.ts), and the summarize function runs every minute on an
 * EventBridge schedule, one run at a time. Each role gets only the table
 * actions its function performs.
 */
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Stream } from 'aws-cdk-lib/aws-kinesis';
import { StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { KinesisEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  AGGREGATE_EVENT_SOURCE,
  aggregateMaxRecordAgeSeconds,
  ENV,
  RESOURCE_NAMES,
} from '../contract/resources.js';
import { BundledFunction, type BundledFunctionProps } from './bundled-function.js';

/**
 * Table actions by function, exactly what its code calls; every one on the
 * table's ARN (there is no index). The aggregator only puts: blocks and marks
 * with a condition, never reading or updating an item. The summarizer reads
 * blocks by Query, puts summaries and roll-ups, and deletes the late marks it
 * has handled. The query function only runs Queries. No Scan anywhere, no
 * batch operations, no UpdateItem or GetItem.
 */
export const TABLE_ACTIONS = {
  aggregate: ['dynamodb:PutItem'],
  summarize: ['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
  query: ['dynamodb:Query'],
} as const satisfies Record<BundledFunctionProps['name'], readonly string[]>;

/**
 * The summarizer's size. Each run reads the active window's blocks of every
 * busy service (window minutes x BLOCK_SHARDS Queries each), inflates them
 * and merges them per endpoint: at 1,000 agents x 1,000 endpoints that is
 * about a million endpoints, a few hundred MB of objects and CPU-bound
 * inflate/merge work. 2 GB holds the merged window beside the decoded parts
 * and buys more than one vCPU (Lambda gives CPU in proportion to memory).
 * Once an hour a run also rolls the complete hour up (60 minutes of blocks
 * per service), which does not fit a one-minute budget: hence 5 minutes.
 * Reserved concurrency 1 makes such a long run delay the next tick instead of
 * racing it on the same summary items.
 */
const SUMMARIZE_SIZE = { memorySize: 2048, timeout: Duration.minutes(5) } as const;

/** Settings of the functions. */
export interface FunctionsProps {
  namePrefix: string;
  stream: Stream;
  table: Table;
  logRetention: RetentionDays;
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
  /** Where the event source mapping puts batches it gave up on. */
  readonly onFailureQueue: Queue;
  /** Signs the query API's pagination cursors. */
  readonly cursorKey: Secret;

  constructor(scope: Construct, id: string, props: FunctionsProps) {
    super(scope, id);
    const { table } = props;
    const common = {
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
    this.cursorKey = new Secret(this, 'CursorKey', {
      description: 'udpwatch: signs the query API pagination cursors',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.cursorKey).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The key only signs short-lived pagination cursors and reaches the function at ' +
        'deploy time; rotating it would just invalidate open cursors. Rotate by replacing ' +
        'the secret and redeploying.',
    });
    this.query = new BundledFunction(this, 'Query', {
      ...common,
      name: 'query',
      description: 'Answers the udpwatch HTTP API from the stored blocks and summaries',
      memorySize: 512,
      timeout: Duration.seconds(10),
      environment: {
        ...tableEnvironment,
        // A CloudFormation dynamic reference: the template holds only the
        // secret's ARN; the value is resolved into the (KMS-encrypted)
        // function configuration at deploy time.
        [ENV.cursorKey]: this.cursorKey.secretValue.unsafeUnwrap(),
      },
    });
    allowTable(this.query, table, TABLE_ACTIONS.query);

    // --- summarize: schedule -> table -> CloudWatch (EMF via its logs) --
    this.summarize = new BundledFunction(this, 'Summarize', {
      ...common,
      name: 'summarize',
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
  }
}

/** Lets a function perform exactly `actions` on the table, by its ARN. */
function allowTable(target: BundledFunction, table: Table, actions: readonly string[]): void {
  target.role.addToPrincipalPolicy(
    new PolicyStatement({ actions: [...actions], resources: [table.tableArn] }),
  );
}
