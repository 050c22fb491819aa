/**
 * The three functions and what drives them: the aggregator reads the stream
 * through an event source mapping (failed batches land in an encrypted
 * queue), the query function serves the API (wired in query-api.ts), and the
 * metrics function runs every minute on an EventBridge schedule. Each role
 * gets only the table actions its function performs.
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
  DEFAULTS,
  ENV,
  RESOURCE_NAMES,
  TABLE,
} from '../contract/resources.js';
import { BundledFunction } from './bundled-function.js';

/**
 * Table actions by function: single-item conditional updates and key or index
 * reads. No Scan anywhere, no DeleteItem (TTL deletes), no batch writes.
 */
const TABLE_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'];
const TABLE_WRITE_ACTIONS = ['dynamodb:UpdateItem', 'dynamodb:PutItem'];

/** Settings of the functions. */
export interface FunctionsProps {
  namePrefix: string;
  stream: Stream;
  table: Table;
  logRetention: RetentionDays;
  logLevel: string;
  activeWindowSeconds: number;
  retentionHours: number;
  /** Seconds the event source gathers records per aggregator invocation. */
  batchingWindowSeconds: number;
}

/** The aggregate, query and metrics functions with their triggers. */
export class Functions extends Construct {
  readonly aggregate: BundledFunction;
  readonly query: BundledFunction;
  readonly metrics: BundledFunction;
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
      description: 'Folds connection logs from Kinesis into the clients table',
      memorySize: 1024,
      timeout: Duration.minutes(2),
      environment: { ...tableEnvironment, [ENV.stream]: props.stream.streamName },
    });
    allowTableRead(this.aggregate, table);
    allowTableWrite(this.aggregate, table);

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
        maxBatchingWindow: Duration.seconds(props.batchingWindowSeconds),
        parallelizationFactor: AGGREGATE_EVENT_SOURCE.parallelizationFactor,
        reportBatchItemFailures: true,
        bisectBatchOnError: true,
        retryAttempts: AGGREGATE_EVENT_SOURCE.retryAttempts,
        maxRecordAge: Duration.seconds(AGGREGATE_EVENT_SOURCE.maxRecordAgeSeconds),
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
      description: 'Answers the udpwatch HTTP API from the clients table',
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
    allowTableRead(this.query, table);

    // --- metrics: schedule -> table -> CloudWatch (EMF via its logs) ----
    this.metrics = new BundledFunction(this, 'Metrics', {
      ...common,
      name: 'metrics',
      description: 'Publishes active-client counts per service as CloudWatch metrics',
      memorySize: 512,
      timeout: Duration.seconds(50),
      environment: tableEnvironment,
    });
    allowTableRead(this.metrics, table);
    allowTableWrite(this.metrics, table);
    new Rule(this, 'MetricsSchedule', {
      description: 'Runs the udpwatch metrics function every minute',
      schedule: Schedule.rate(Duration.seconds(DEFAULTS.refreshIntervalSeconds)),
      // A missed minute is covered by the next one; retrying late would only
      // publish a stale count.
      targets: [new LambdaFunction(this.metrics.function, { retryAttempts: 0 })],
    });
  }
}

/** Lets a function read items of the table and query its indexes, by ARN. */
function allowTableRead(target: BundledFunction, table: Table): void {
  target.role.addToPrincipalPolicy(
    new PolicyStatement({
      actions: TABLE_READ_ACTIONS,
      resources: [
        table.tableArn,
        ...TABLE.indexes.map((index) => `${table.tableArn}/index/${index.name}`),
      ],
    }),
  );
}

/** Lets a function write items of the table (indexes follow by themselves). */
function allowTableWrite(target: BundledFunction, table: Table): void {
  target.role.addToPrincipalPolicy(
    new PolicyStatement({ actions: TABLE_WRITE_ACTIONS, resources: [table.tableArn] }),
  );
}
