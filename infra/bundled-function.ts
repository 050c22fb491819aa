/**
 * One Lambda function as udpwatch deploys them all: TypeScript from
 * functions/, bundled by the esbuild in node_modules (never Docker) into an
 * ESM file with a source map, Node.js 22 on arm64, its own KMS-encrypted log
 * group with a retention, and its own role that may write only to that log group. Each
 * caller adds exactly the data permissions the function needs.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RESOURCE_NAMES } from '../contract/resources.js';

/** The repository root: entries and the lock file are found relative to it. */
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * esbuild's ESM output has no `require`; a bundled CommonJS dependency that
 * calls it (for a Node built-in) needs one.
 */
const REQUIRE_BANNER =
  "import { createRequire as udpwatchCreateRequire } from 'node:module';" +
  'const require = udpwatchCreateRequire(import.meta.url);';

/**
 * How every function is bundled. esbuild is a dependency of the project, so
 * CDK finds it in node_modules and bundles locally; Docker is never forced.
 */
export const BUNDLING = {
  forceDockerBundling: false,
  format: OutputFormat.ESM,
  mainFields: ['module', 'main'],
  banner: REQUIRE_BANNER,
  target: 'node22',
  sourceMap: true,
  sourcesContent: false,
  minify: true,
  // Ship the SDK version the tests ran against, not whatever the runtime has.
  bundleAwsSDK: true,
} as const satisfies BundlingOptions;

/** Settings of one bundled function. */
export interface BundledFunctionProps {
  /** Folder under functions/ whose handler.ts exports `handler`. */
  name: 'aggregate' | 'query' | 'summarize' | 'rollup' | 'cursor-rotation';
  description: string;
  memorySize: number;
  timeout: Duration;
  /** Caps concurrent runs (1: never two at once); default the account's unreserved pool. */
  reservedConcurrentExecutions?: number;
  /** Asynchronous invocations only: how long an event may wait (e.g. behind a throttle) before it is dropped. */
  maxEventAge?: Duration;
  /** Asynchronous invocations only: retries after a failed run. */
  retryAttempts?: number;
  logRetention: RetentionDays;
  /** Encrypts the log group (its lines may hold client addresses). */
  logKey: IKey;
  /** The log group's name (the key policy admits only this stack's names). */
  logGroupName: string;
  logLevel: string;
  environment: Record<string, string>;
}

/** A NodejsFunction with its own least-privilege role and log group. */
export class BundledFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: BundledFunctionProps) {
    super(scope, id);
    this.logGroup = new LogGroup(this, 'Logs', {
      logGroupName: props.logGroupName,
      encryptionKey: props.logKey,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Not the AWSLambdaBasicExecutionRole managed policy: that one may write
    // to every log group in the account.
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `udpwatch ${props.name} function`,
    });
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.function = new NodejsFunction(this, 'Function', {
      entry: join(PROJECT_ROOT, 'functions', props.name, 'handler.ts'),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      maxEventAge: props.maxEventAge,
      retryAttempts: props.retryAttempts,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        POWERTOOLS_SERVICE_NAME: RESOURCE_NAMES.powertoolsService,
        POWERTOOLS_LOG_LEVEL: props.logLevel,
        POWERTOOLS_METRICS_NAMESPACE: RESOURCE_NAMES.metricsNamespace,
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: BUNDLING,
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'nodejs22.x is the runtime udpwatch is built and tested for (the bundle targets ' +
        'node22); moving to a newer runtime is a deliberate, tested change, not a drift.',
    });
  }
}
