// biome-ignore-all lint/suspicious/noExplicitAny: synthesized CloudFormation is untyped JSON
/**
 * The synthesized udpwatch stack, built once with real esbuild bundling of the
 * three functions, checked point by point against what the stack promises.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGGREGATE_EVENT_SOURCE,
  aggregateMaxRecordAgeSeconds,
  ENV,
  METRICS,
  RESOURCE_NAMES,
  ROLLUP_SCHEDULE_MINUTES,
  ROLLUP_TIMEOUT_MINUTES,
  TABLE,
} from '../../../contract/resources.js';
import { AGENT_KINESIS_ACTIONS } from '../../../infra/agent-access.js';
import { type BuiltApp, buildApp } from '../../../infra/app.js';
import { BUNDLING } from '../../../infra/bundled-function.js';
import { TABLE_CAPACITY_DEFAULTS } from '../../../infra/config.js';
import { ROTATION_ACTIONS, ROTATION_DAYS } from '../../../infra/cursor-key.js';
import { LOGS_KEY_ACTIONS } from '../../../infra/log-key.js';
import { API_ROUTE_PATH } from '../../../infra/query-api.js';

type Resource = { Type: string; Properties: Record<string, any>; [key: string]: any };

let outdir: string;
let built: BuiltApp;
let template: Template;
let resources: Record<string, Resource>;

const CONTEXT = {
  serviceAlarms: {
    dns: { min: 10, max: 50000 },
    ntp: { minIps: 3, maxIps: 900, evaluationPeriods: 3, treatMissingData: 'ignore' },
  },
  alarmEmail: 'oncall@example.com',
  agentInstanceProfile: true,
  minAgentsReporting: 4,
  apiRateLimit: 20,
  apiBurstLimit: 40,
};

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'udpwatch-infra-'));
  built = buildApp(CONTEXT, outdir);
  template = Template.fromStack(built.stack);
  resources = template.toJSON().Resources;
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

/** Resources of one CloudFormation type, keyed by logical id. */
function ofType(type: string): Record<string, Resource> {
  return Object.fromEntries(Object.entries(resources).filter(([, r]) => r.Type === type));
}

/** The one resource of a type (fails when there are more or none). */
function single(type: string): [string, Resource] {
  const found = Object.entries(ofType(type));
  expect(found, type).toHaveLength(1);
  return found[0]!;
}

/** The logical id of the function whose description starts with `prefix`. */
function functionId(prefix: string): string {
  const found = Object.entries(ofType('AWS::Lambda::Function')).filter(([, f]) =>
    String(f.Properties.Description).startsWith(prefix),
  );
  expect(found).toHaveLength(1);
  return found[0]![0];
}

/** Every statement of the identity policies attached to a function's role. */
function roleStatements(fnId: string): any[] {
  const roleId = resources[fnId]!.Properties.Role['Fn::GetAtt'][0];
  return Object.values(ofType('AWS::IAM::Policy'))
    .filter((p) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

const asList = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

describe('encryption at rest', () => {
  it('encrypts the stream with KMS', () => {
    const [, stream] = single('AWS::Kinesis::Stream');
    expect(stream.Properties.StreamEncryption).toEqual({
      EncryptionType: 'KMS',
      KeyId: 'alias/aws/kinesis',
    });
  });

  it('encrypts the table, the on-failure queue and the alarm topic', () => {
    const [, table] = single('AWS::DynamoDB::Table');
    expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true });
    const [, queue] = single('AWS::SQS::Queue');
    expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
    const [, topic] = single('AWS::SNS::Topic');
    const keyId = topic.Properties.KmsMasterKeyId['Fn::GetAtt'][0];
    expect(resources[keyId]!.Type).toBe('AWS::KMS::Key');
    expect(resources[keyId]!.Properties.EnableKeyRotation).toBe(true);
  });

  it('lets CloudWatch publish to the encrypted topic through its key policy', () => {
    const [, topic] = single('AWS::SNS::Topic');
    const key = resources[topic.Properties.KmsMasterKeyId['Fn::GetAtt'][0]]!;
    const statement = key.Properties.KeyPolicy.Statement.find(
      (s: any) => s.Principal?.Service === 'cloudwatch.amazonaws.com',
    );
    expect(statement.Action).toEqual(expect.arrayContaining(['kms:Decrypt']));
  });

  it('encrypts every log group with one rotated customer managed key', () => {
    const groups = Object.values(ofType('AWS::Logs::LogGroup'));
    // Five functions and the API access logs.
    expect(groups).toHaveLength(6);
    const keyIds = new Set(groups.map((g) => g.Properties.KmsKeyId['Fn::GetAtt'][0]));
    expect(keyIds.size).toBe(1);
    const key = resources[[...keyIds][0]!]!;
    expect(key.Type).toBe('AWS::KMS::Key');
    expect(key.Properties.EnableKeyRotation).toBe(true);
    for (const g of groups) expect(g.Properties.LogGroupName).toMatch(/^\/udpwatch\/Udpwatch\//);
  });

  it("lets only this region's CloudWatch Logs use the log key, for this stack's log groups", () => {
    const group = Object.values(ofType('AWS::Logs::LogGroup'))[0]!;
    const key = resources[group.Properties.KmsKeyId['Fn::GetAtt'][0]]!;
    const statements = key.Properties.KeyPolicy.Statement;
    const services = statements.filter((st: any) => st.Principal?.Service);
    expect(services).toHaveLength(1);
    const logs = services[0];
    expect(logs.Principal.Service).toEqual({
      'Fn::Join': ['', ['logs.', { Ref: 'AWS::Region' }, '.amazonaws.com']],
    });
    expect([...asList(logs.Action)].sort()).toEqual([...LOGS_KEY_ACTIONS].sort());
    for (const action of asList(logs.Action)) expect(action).not.toContain('*');
    expect(logs.Condition).toEqual({
      ArnLike: {
        'kms:EncryptionContext:aws:logs:arn': {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':logs:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':log-group:/udpwatch/Udpwatch/*',
            ],
          ],
        },
      },
    });
    // Otherwise only the account's administration statement (the CDK default).
    expect(statements.filter((st: any) => !st.Principal?.Service)).toHaveLength(1);
  });

  it('gives the query function only the cursor secret ARN, and only its signing and verifying stages', () => {
    const [secretId, secret] = single('AWS::SecretsManager::Secret');
    expect(secret.Properties.SecretString).toBeUndefined();
    const env = resources[functionId('Answers')]!.Properties.Environment.Variables;
    expect(env[ENV.cursorSecret]).toEqual({ Ref: secretId });
    expect(env[ENV.cursorKey]).toBeUndefined();
    const sm = roleStatements(functionId('Answers')).filter((st) =>
      asList(st.Action).some((a) => a.startsWith('secretsmanager:')),
    );
    expect(sm).toEqual([
      {
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: { Ref: secretId },
        Condition: {
          StringEquals: { 'secretsmanager:VersionStage': ['AWSCURRENT', 'AWSPREVIOUS'] },
        },
      },
    ]);
  });

  it("lets the query function describe only this stack's alarms, and names every alarm so", () => {
    const stackName = built.stack.stackName;
    const env = resources[functionId('Answers')]!.Properties.Environment.Variables;
    expect(env[ENV.alarmPrefix]).toBe(`${stackName}-`);
    const cw = roleStatements(functionId('Answers')).filter((st) =>
      asList(st.Action).some((a) => a.startsWith('cloudwatch:')),
    );
    expect(cw).toEqual([
      {
        Effect: 'Allow',
        Action: 'cloudwatch:DescribeAlarms',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':cloudwatch:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              `:alarm:${stackName}-*`,
            ],
          ],
        },
      },
    ]);
    // No other role may read alarm states.
    const readers = Object.values(ofType('AWS::IAM::Policy')).filter((p) =>
      p.Properties.PolicyDocument.Statement.some((st: any) =>
        asList(st.Action).some((a: string) => a.startsWith('cloudwatch:Describe')),
      ),
    );
    expect(readers).toHaveLength(1);
    // GET /v1/alarms lists by that prefix: every alarm of the stack carries it.
    const names = Object.values(ofType('AWS::CloudWatch::Alarm')).map(
      (a) => a.Properties.AlarmName,
    );
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) expect(String(name).startsWith(`${stackName}-`), name).toBe(true);
    expect(names).toContain(`${stackName}-dns-ActiveClients-below-10`);
  });

  it('rotates the cursor secret every 30 days with its own function, limited to that secret', () => {
    const [secretId] = single('AWS::SecretsManager::Secret');
    const [, schedule] = single('AWS::SecretsManager::RotationSchedule');
    const rotationId = functionId('Rotates');
    expect(schedule.Properties).toEqual({
      SecretId: { Ref: secretId },
      RotationLambdaARN: { 'Fn::GetAtt': [rotationId, 'Arn'] },
      RotationRules: { ScheduleExpression: `rate(${ROTATION_DAYS} days)` },
    });
    expect(ROTATION_DAYS).toBe(30);
    const statements = roleStatements(rotationId).filter((st) =>
      asList(st.Action).some((a) => !a.startsWith('logs:')),
    );
    expect(statements).toEqual([
      { Effect: 'Allow', Action: ROTATION_ACTIONS, Resource: { Ref: secretId } },
    ]);
    const permissions = Object.values(ofType('AWS::Lambda::Permission')).filter(
      (p) => p.Properties.FunctionName['Fn::GetAtt']?.[0] === rotationId,
    );
    expect(permissions.map((p) => p.Properties.Principal)).toEqual([
      'secretsmanager.amazonaws.com',
    ]);
    expect(permissions[0]!.Properties.SourceAccount).toEqual({ Ref: 'AWS::AccountId' });
  });
});

describe('clients table', () => {
  it('is provisioned under auto scaling with TTL on the contract attribute and point-in-time recovery', () => {
    const min = TABLE_CAPACITY_DEFAULTS.minCapacity;
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      ProvisionedThroughput: { ReadCapacityUnits: min, WriteCapacityUnits: min },
      TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TableName: RESOURCE_NAMES.table,
    });
  });

  it('scales reads and writes by target tracking between the minimum and the ceilings', () => {
    const targets = Object.values(ofType('AWS::ApplicationAutoScaling::ScalableTarget'));
    expect(targets.map((t) => t.Properties.ScalableDimension).sort()).toEqual([
      'dynamodb:table:ReadCapacityUnits',
      'dynamodb:table:WriteCapacityUnits',
    ]);
    for (const t of targets) {
      expect(t.Properties.MinCapacity).toBe(TABLE_CAPACITY_DEFAULTS.minCapacity);
      expect(t.Properties.MaxCapacity).toBe(
        t.Properties.ScalableDimension.startsWith('dynamodb:table:Write')
          ? TABLE_CAPACITY_DEFAULTS.maxWriteCapacity
          : TABLE_CAPACITY_DEFAULTS.maxReadCapacity,
      );
    }
    const policies = Object.values(ofType('AWS::ApplicationAutoScaling::ScalingPolicy'));
    expect(
      policies.map((p) => p.Properties.TargetTrackingScalingPolicyConfiguration.TargetValue),
    ).toEqual([
      TABLE_CAPACITY_DEFAULTS.targetUtilizationPercent,
      TABLE_CAPACITY_DEFAULTS.targetUtilizationPercent,
    ]);
  });

  it('has exactly the keys of the contract and no secondary index', () => {
    const [, table] = single('AWS::DynamoDB::Table');
    expect(table.Properties.KeySchema).toEqual([
      { AttributeName: TABLE.partitionKey.name, KeyType: 'HASH' },
      { AttributeName: TABLE.sortKey.name, KeyType: 'RANGE' },
    ]);
    expect(table.Properties.GlobalSecondaryIndexes).toBeUndefined();
    expect(table.Properties.LocalSecondaryIndexes).toBeUndefined();
    expect(table.Properties.AttributeDefinitions).toEqual([
      { AttributeName: TABLE.partitionKey.name, AttributeType: TABLE.partitionKey.type },
      { AttributeName: TABLE.sortKey.name, AttributeType: TABLE.sortKey.type },
    ]);
  });

  it('is protected and retained in production (the default)', () => {
    const [, table] = single('AWS::DynamoDB::Table');
    expect(table.Properties.DeletionProtectionEnabled).toBe(true);
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.UpdateReplacePolicy).toBe('Retain');
  });
});

describe('stream and aggregate event source', () => {
  it('is a provisioned stream of 2 shards named from the contract by default', () => {
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      Name: RESOURCE_NAMES.stream,
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      ShardCount: 2,
      RetentionPeriodHours: 24,
    });
  });

  it('maps the stream to the aggregate function with the contract settings', () => {
    const [, mapping] = single('AWS::Lambda::EventSourceMapping');
    const [queueId] = single('AWS::SQS::Queue');
    const [streamId] = single('AWS::Kinesis::Stream');
    expect(mapping.Properties).toMatchObject({
      EventSourceArn: { 'Fn::GetAtt': [streamId, 'Arn'] },
      FunctionName: { Ref: functionId('Stores') },
      BatchSize: AGGREGATE_EVENT_SOURCE.batchSize,
      MaximumBatchingWindowInSeconds: AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds,
      ParallelizationFactor: AGGREGATE_EVENT_SOURCE.parallelizationFactor,
      MaximumRetryAttempts: AGGREGATE_EVENT_SOURCE.retryAttempts,
      MaximumRecordAgeInSeconds: aggregateMaxRecordAgeSeconds(24),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: AGGREGATE_EVENT_SOURCE.bisectBatchOnError,
      StartingPosition: 'TRIM_HORIZON',
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId, 'Arn'] } } },
    });
  });

  it('names the on-failure queue from the contract and enforces TLS on it', () => {
    const [queueId, queue] = single('AWS::SQS::Queue');
    expect(queue.Properties.QueueName).toBe(RESOURCE_NAMES.onFailureQueue);
    const [, policy] = single('AWS::SQS::QueuePolicy');
    expect(policy.Properties.Queues).toEqual([{ Ref: queueId }]);
    expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
  });
});

describe('functions', () => {
  it('runs all four table functions on nodejs22.x, arm64, with Powertools settings and table env', () => {
    const functions = ['Stores', 'Answers', 'Summarizes', 'Builds'].map(
      (p) => resources[functionId(p)]!,
    );
    expect(Object.values(ofType('AWS::Lambda::Function'))).toHaveLength(5);
    const [tableId] = single('AWS::DynamoDB::Table');
    for (const fn of functions) {
      expect(fn.Properties.Runtime).toBe('nodejs22.x');
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      expect(fn.Properties.Handler).toBe('index.handler');
      expect(fn.Properties.Environment.Variables).toMatchObject({
        POWERTOOLS_SERVICE_NAME: RESOURCE_NAMES.powertoolsService,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        POWERTOOLS_METRICS_NAMESPACE: RESOURCE_NAMES.metricsNamespace,
        NODE_OPTIONS: '--enable-source-maps',
        [ENV.table]: { Ref: tableId },
        [ENV.activeWindow]: '300',
        [ENV.retentionHours]: '24',
      });
    }
  });

  it('gives every function its own log group with a retention', () => {
    for (const fn of Object.values(ofType('AWS::Lambda::Function'))) {
      const logGroupId = fn.Properties.LoggingConfig.LogGroup.Ref;
      expect(resources[logGroupId]!.Type).toBe('AWS::Logs::LogGroup');
      expect(resources[logGroupId]!.Properties.RetentionInDays).toBe(30);
    }
  });

  it('bundles with the local esbuild into ESM with a require banner and a source map', () => {
    expect(BUNDLING.forceDockerBundling).toBe(false);
    const assetDirs = readdirSync(outdir).filter((name) => name.startsWith('asset.'));
    const bundles = assetDirs.filter((dir) => existsSync(join(outdir, dir, 'index.mjs')));
    expect(bundles).toHaveLength(5);
    for (const dir of bundles) {
      const code = readFileSync(join(outdir, dir, 'index.mjs'), 'utf8');
      expect(code.startsWith(BUNDLING.banner)).toBe(true);
      expect(code).toMatch(/\/\/# sourceMappingURL=index\.mjs\.map\s*$/);
      expect(existsSync(join(outdir, dir, 'index.mjs.map'))).toBe(true);
    }
  });

  it('runs summarize every minute and roll-up every few minutes from EventBridge, without retries', () => {
    const rules = Object.values(ofType('AWS::Events::Rule'));
    const byTarget = new Map(
      rules.map((r) => [r.Properties.Targets[0].Arn['Fn::GetAtt'][0], r.Properties]),
    );
    expect(byTarget.size).toBe(2);
    const schedules = {
      Summarizes: 'rate(1 minute)',
      Builds: `rate(${ROLLUP_SCHEDULE_MINUTES} minutes)`,
    };
    for (const [prefix, expression] of Object.entries(schedules)) {
      const rule = byTarget.get(functionId(prefix))!;
      expect(rule.ScheduleExpression, prefix).toBe(expression);
      expect(rule.State).toBe('ENABLED');
      expect(rule.Targets).toEqual([
        expect.objectContaining({ RetryPolicy: { MaximumRetryAttempts: 0 } }),
      ]);
    }
  });

  it('never runs two summarize (or roll-up) runs at once and drops a tick stuck behind one', () => {
    const sizes = {
      Summarizes: { ReservedConcurrentExecutions: 1, MemorySize: 2048, Timeout: 300 },
      Builds: {
        ReservedConcurrentExecutions: 1,
        MemorySize: 2048,
        Timeout: ROLLUP_TIMEOUT_MINUTES * 60,
      },
    };
    const configs = Object.values(ofType('AWS::Lambda::EventInvokeConfig'));
    expect(configs).toHaveLength(2);
    for (const [prefix, size] of Object.entries(sizes)) {
      const id = functionId(prefix);
      expect(resources[id]!.Properties).toMatchObject(size);
      const config = configs.find((c) => c.Properties.FunctionName.Ref === id);
      expect(config?.Properties).toMatchObject({
        MaximumEventAgeInSeconds: 60,
        MaximumRetryAttempts: 0,
      });
    }
    for (const other of [functionId('Stores'), functionId('Answers')]) {
      expect(resources[other]!.Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
  });
});

describe('query API', () => {
  it('requires IAM authorization on every route', () => {
    const routes = Object.values(ofType('AWS::ApiGatewayV2::Route'));
    expect(routes.map((r) => r.Properties.RouteKey)).toEqual([`GET ${API_ROUTE_PATH}`]);
    for (const route of routes) {
      expect(route.Properties.AuthorizationType, route.Properties.RouteKey).toBe('AWS_IAM');
    }
  });

  it('throttles and logs the stage', () => {
    const [, stage] = single('AWS::ApiGatewayV2::Stage');
    expect(stage.Properties.DefaultRouteSettings).toEqual({
      ThrottlingRateLimit: CONTEXT.apiRateLimit,
      ThrottlingBurstLimit: CONTEXT.apiBurstLimit,
    });
    expect(stage.Properties.AccessLogSettings.DestinationArn['Fn::GetAtt'][1]).toBe('Arn');
  });

  it('lets only this API invoke the query function', () => {
    const queryId = functionId('Answers');
    const permissions = Object.values(ofType('AWS::Lambda::Permission')).filter(
      (p) => p.Properties.FunctionName['Fn::GetAtt'][0] === queryId,
    );
    expect(permissions).toHaveLength(1);
    expect(permissions[0]!.Properties.Principal).toBe('apigateway.amazonaws.com');
    expect(JSON.stringify(permissions[0]!.Properties.SourceArn)).toContain(
      single('AWS::ApiGatewayV2::Api')[0],
    );
  });
});

describe('least privilege', () => {
  const identityStatements = () =>
    [
      ...Object.values(ofType('AWS::IAM::Policy')),
      ...Object.values(ofType('AWS::IAM::ManagedPolicy')),
    ].flatMap((p) => p.Properties.PolicyDocument.Statement);

  it('has no wildcard action and no wildcard resource in any identity policy', () => {
    const statements = identityStatements();
    expect(statements.length).toBeGreaterThan(5);
    for (const statement of statements) {
      for (const action of asList(statement.Action)) expect(action).not.toContain('*');
      for (const resource of asList(statement.Resource)) {
        expect(typeof resource === 'string' ? resource : '').not.toContain('*');
      }
      expect(statement.NotAction).toBeUndefined();
      expect(statement.NotResource).toBeUndefined();
    }
  });

  it('attaches no AWS managed policy and has no inline role policies', () => {
    for (const role of Object.values(ofType('AWS::IAM::Role'))) {
      for (const arn of role.Properties.ManagedPolicyArns ?? []) {
        expect(JSON.stringify(arn)).not.toContain(':iam::aws:policy');
      }
      expect(role.Properties.Policies).toBeUndefined();
    }
  });

  it('never allows Scan or PutMetricData (metrics go out as EMF logs)', () => {
    const actions = identityStatements().flatMap((s) => asList(s.Action));
    for (const forbidden of ['dynamodb:Scan', 'cloudwatch:PutMetricData']) {
      expect(actions).not.toContain(forbidden);
    }
  });

  it('gives each role exactly the table actions its code performs, on the table ARN only', () => {
    const [tableId] = single('AWS::DynamoDB::Table');
    const expected: Record<string, string[]> = {
      // Conditional puts of blocks, marks and agents, the services' lastSeen by
      // conditional UpdateItem (item-writer.ts refreshService): no read.
      Stores: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
      // Reads blocks, writes summaries and roll-up marks, sets a minute in its hour of
      // counts (UpdateItem), deletes handled late marks.
      Summarizes: [
        'dynamodb:DeleteItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
      ],
      // Reads blocks and marks, writes roll-up parts, records a shard done on its mark.
      Builds: ['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
      Answers: ['dynamodb:Query'],
    };
    for (const [prefix, actions] of Object.entries(expected)) {
      const dynamo = roleStatements(functionId(prefix)).filter((s) =>
        asList(s.Action).some((a) => a.startsWith('dynamodb:')),
      );
      expect(dynamo, prefix).toHaveLength(1);
      expect([...asList(dynamo[0].Action)].sort(), prefix).toEqual(actions);
      expect(dynamo[0].Effect).toBe('Allow');
      expect(dynamo[0].Resource, prefix).toEqual({ 'Fn::GetAtt': [tableId, 'Arn'] });
      expect(dynamo[0].Condition).toBeUndefined();
    }
    // No other identity policy (agent, EC2 role) touches DynamoDB at all.
    const all = identityStatements().filter((s) =>
      asList(s.Action).some((a) => a.startsWith('dynamodb:')),
    );
    expect(all).toHaveLength(4);
  });

  it('lets the query, summarize and roll-up functions use only logs, the table (and the cursor secret and alarms)', () => {
    const allowed: Record<string, string[]> = {
      Answers: ['logs', 'dynamodb', 'secretsmanager', 'cloudwatch'],
      Summarizes: ['logs', 'dynamodb'],
      Builds: ['logs', 'dynamodb'],
    };
    for (const prefix of ['Answers', 'Summarizes', 'Builds']) {
      const services = new Set(
        roleStatements(functionId(prefix)).flatMap((s) =>
          asList(s.Action).map((a) => a.split(':')[0]),
        ),
      );
      expect(services, prefix).toEqual(new Set(allowed[prefix]));
    }
  });

  it('lets only aggregate read the stream and send to the on-failure queue', () => {
    const [queueId] = single('AWS::SQS::Queue');
    const sqs = roleStatements(functionId('Stores')).filter((s) =>
      asList(s.Action).some((a) => a.startsWith('sqs:')),
    );
    expect(sqs.map((s) => s.Resource)).toEqual([{ 'Fn::GetAtt': [queueId, 'Arn'] }]);
    const kinesisUsers = ['Stores', 'Summarizes', 'Answers', 'Rotates'].filter((prefix) =>
      roleStatements(functionId(prefix)).some((s) =>
        asList(s.Action).some((a) => a.startsWith('kinesis:')),
      ),
    );
    expect(kinesisUsers).toEqual(['Stores']);
  });

  it('gives each role exactly the data actions its bundled code calls, no more, no fewer', async () => {
    // The SDK commands each handler's bundle really constructs (tree-shaken,
    // SDK external), mapped to the IAM actions they need.
    const ACTION_OF: Record<string, string> = {
      PutCommand: 'dynamodb:PutItem',
      UpdateCommand: 'dynamodb:UpdateItem',
      DeleteCommand: 'dynamodb:DeleteItem',
      QueryCommand: 'dynamodb:Query',
      GetCommand: 'dynamodb:GetItem',
      ScanCommand: 'dynamodb:Scan',
      BatchWriteCommand: 'dynamodb:BatchWriteItem',
      BatchGetCommand: 'dynamodb:BatchGetItem',
      TransactWriteCommand: 'dynamodb:TransactWriteItems',
      GetSecretValueCommand: 'secretsmanager:GetSecretValue',
      DescribeSecretCommand: 'secretsmanager:DescribeSecret',
      PutSecretValueCommand: 'secretsmanager:PutSecretValue',
      UpdateSecretVersionStageCommand: 'secretsmanager:UpdateSecretVersionStage',
      DescribeAlarmsCommand: 'cloudwatch:DescribeAlarms',
    };
    const functions: Record<string, string> = {
      Stores: 'aggregate',
      Summarizes: 'summarize',
      Answers: 'query',
      Rotates: 'cursor-rotation',
    };
    for (const [prefix, folder] of Object.entries(functions)) {
      const out = await build({
        entryPoints: [join(import.meta.dirname, '../../../functions', folder, 'handler.ts')],
        bundle: true,
        write: false,
        platform: 'node',
        format: 'esm',
        packages: 'external',
        logLevel: 'silent',
      });
      const commands = new Set(
        [...out.outputFiles[0]!.text.matchAll(/new (\w+?Command)\d*\(/g)].map((m) => m[1]!),
      );
      const called = [...commands].map((c) => {
        const action = ACTION_OF[c];
        if (!action) throw new Error(`${folder} constructs ${c}: add its IAM action to ACTION_OF`);
        return action;
      });
      // The stream and failure-queue grants serve the event source mapping
      // (Lambda's poller), not the function's code.
      const granted = roleStatements(functionId(prefix))
        .flatMap((st) => asList(st.Action) as string[])
        .filter((a) => !/^(logs|kinesis|sqs):/.test(a));
      expect([...new Set(granted)].sort(), folder).toEqual([...new Set(called)].sort());
    }
  });

  it('scopes every function log statement to its own log group', () => {
    for (const [fnId, fn] of Object.entries(ofType('AWS::Lambda::Function'))) {
      const logs = roleStatements(fnId).filter((s) =>
        asList(s.Action).some((a) => a.startsWith('logs:')),
      );
      expect(logs).toHaveLength(1);
      expect(logs[0].Resource).toEqual({
        'Fn::GetAtt': [fn.Properties.LoggingConfig.LogGroup.Ref, 'Arn'],
      });
    }
  });
});

describe('agent access', () => {
  it('allows only the agent Kinesis actions on this stream', () => {
    const [, policy] = single('AWS::IAM::ManagedPolicy');
    const [streamId] = single('AWS::Kinesis::Stream');
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      {
        Sid: 'PutConnectionLogs',
        Effect: 'Allow',
        Action: 'kinesis:PutRecords',
        Resource: { 'Fn::GetAtt': [streamId, 'Arn'] },
      },
    ]);
    // The shipper's only call; a holder can still put any record into the stream,
    // so the aggregate function validates every record it reads.
    expect(AGENT_KINESIS_ACTIONS).toEqual(['kinesis:PutRecords']);
  });

  it('creates the optional EC2 role and instance profile carrying the policy', () => {
    const [policyId] = single('AWS::IAM::ManagedPolicy');
    const ec2Roles = Object.entries(ofType('AWS::IAM::Role')).filter(([, role]) =>
      JSON.stringify(role.Properties.AssumeRolePolicyDocument).includes('ec2.amazonaws.com'),
    );
    expect(ec2Roles).toHaveLength(1);
    expect(ec2Roles[0]![1].Properties.ManagedPolicyArns).toEqual([{ Ref: policyId }]);
    const [, profile] = single('AWS::IAM::InstanceProfile');
    expect(profile.Properties.Roles).toEqual([{ Ref: ec2Roles[0]![0] }]);
  });
});

describe('alarms', () => {
  const alarms = () => Object.values(ofType('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
  const clientAlarms = () =>
    alarms().filter((a) => a.Dimensions?.some((d: any) => d.Name === METRICS.serviceDimension));

  it('creates one alarm per configured service and bound', () => {
    const serviceOf = (a: any) =>
      a.Dimensions.find((d: any) => d.Name === METRICS.serviceDimension).Value;
    const found = clientAlarms().map((a) => ({
      service: serviceOf(a),
      metric: a.MetricName,
      operator: a.ComparisonOperator,
      threshold: a.Threshold,
      periods: a.EvaluationPeriods,
      missing: a.TreatMissingData,
    }));
    expect(found).toHaveLength(4);
    expect(found).toEqual(
      expect.arrayContaining([
        {
          service: 'dns',
          metric: METRICS.activeClients,
          operator: 'LessThanThreshold',
          threshold: 10,
          periods: 5,
          missing: 'breaching',
        },
        {
          service: 'dns',
          metric: METRICS.activeClients,
          operator: 'GreaterThanThreshold',
          threshold: 50000,
          periods: 5,
          missing: 'notBreaching',
        },
        {
          service: 'ntp',
          metric: METRICS.activeClientIps,
          operator: 'LessThanThreshold',
          threshold: 3,
          periods: 3,
          missing: 'ignore',
        },
        {
          service: 'ntp',
          metric: METRICS.activeClientIps,
          operator: 'GreaterThanThreshold',
          threshold: 900,
          periods: 3,
          missing: 'ignore',
        },
      ]),
    );
    for (const alarm of clientAlarms()) {
      expect(alarm.Namespace).toBe(RESOURCE_NAMES.metricsNamespace);
      expect(alarm.Dimensions).toContainEqual({
        Name: 'service',
        Value: RESOURCE_NAMES.powertoolsService,
      });
      expect(alarm.Dimensions).toHaveLength(2);
      expect(alarm.Period).toBe(60);
    }
  });

  it('has the operations alarms', () => {
    const [queueId] = single('AWS::SQS::Queue');
    const aggregate = functionId('Stores');
    const onAggregate = (metric: string) =>
      alarms().some(
        (a) =>
          a.MetricName === metric &&
          a.Namespace === 'AWS/Lambda' &&
          a.Dimensions[0].Value.Ref === aggregate,
      );
    expect(onAggregate('IteratorAge')).toBe(true);
    expect(onAggregate('Errors')).toBe(true);
    expect(onAggregate('Throttles')).toBe(true);
    const iterator = alarms().find((a) => a.MetricName === 'IteratorAge');
    expect(iterator?.Threshold).toBe(300_000);
    expect(
      alarms().some(
        (a) =>
          a.MetricName === 'ApproximateNumberOfMessagesVisible' &&
          JSON.stringify(a.Dimensions).includes(queueId),
      ),
    ).toBe(true);
    expect(alarms().some((a) => a.MetricName === '5xx' && a.Namespace === 'AWS/ApiGateway')).toBe(
      true,
    );
    const summarizeErrors = alarms().find(
      (a) =>
        a.MetricName === 'Errors' &&
        a.Namespace === 'AWS/Lambda' &&
        a.Dimensions[0].Value.Ref === functionId('Summarizes'),
    );
    expect(summarizeErrors).toMatchObject({ Threshold: 1, Statistic: 'Sum' });
    const agents = alarms().find((a) => a.MetricName === METRICS.agentsReporting);
    expect(agents).toMatchObject({
      Namespace: RESOURCE_NAMES.metricsNamespace,
      Threshold: CONTEXT.minAgentsReporting,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
  });

  it('alarms on any block conflict and any bad record, on the dimensions the aggregator publishes', () => {
    const onCount = (metric: string) => alarms().filter((a) => a.MetricName === metric);
    const conflicts = onCount(METRICS.blockConflicts);
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({
      Namespace: RESOURCE_NAMES.metricsNamespace,
      Dimensions: [{ Name: 'service', Value: RESOURCE_NAMES.powertoolsService }],
      Statistic: 'Sum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    const bad = onCount(METRICS.badRecords);
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({
      Namespace: RESOURCE_NAMES.metricsNamespace,
      Dimensions: [{ Name: 'service', Value: RESOURCE_NAMES.powertoolsService }],
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
  });

  it('notifies an encrypted topic, with the configured e-mail subscribed', () => {
    const [topicId, topic] = single('AWS::SNS::Topic');
    expect(topic.Properties.TopicName).toBe(RESOURCE_NAMES.alarmTopic);
    for (const alarm of alarms()) {
      expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(alarm.OKActions).toEqual([{ Ref: topicId }]);
    }
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: CONTEXT.alarmEmail,
      TopicArn: { Ref: topicId },
    });
  });
});

describe('dashboard and outputs', () => {
  it('shows client counts, agents, ingestion lag and errors', () => {
    const [, dashboard] = single('AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const needle of [
      METRICS.activeClients,
      METRICS.activeClientIps,
      METRICS.agentsReporting,
      'IteratorAge',
      'Errors',
      METRICS.badLines,
      METRICS.badRecords,
      METRICS.blockConflicts,
      METRICS.badBlockParts,
      'ApproximateNumberOfMessagesVisible',
    ]) {
      expect(body).toContain(needle);
    }
  });

  it('outputs the stream, API URL, table, agent policy and dashboard URL', () => {
    const outputs = template.toJSON().Outputs;
    const [streamId] = single('AWS::Kinesis::Stream');
    const [tableId] = single('AWS::DynamoDB::Table');
    const [policyId] = single('AWS::IAM::ManagedPolicy');
    expect(outputs.StreamName.Value).toEqual({ Ref: streamId });
    expect(outputs.StreamArn.Value).toEqual({ 'Fn::GetAtt': [streamId, 'Arn'] });
    expect(outputs.TableName.Value).toEqual({ Ref: tableId });
    const [queueId] = single('AWS::SQS::Queue');
    expect(outputs.OnFailureQueueUrl.Value).toEqual({ Ref: queueId });
    expect(outputs.AgentPolicyArn.Value).toEqual({ Ref: policyId });
    expect(outputs.AgentPolicyArn.Export.Name).toBe('Udpwatch-AgentPolicyArn');
    expect(JSON.stringify(outputs.ApiUrl.Value)).toContain('.execute-api.');
    expect(JSON.stringify(outputs.DashboardUrl.Value)).toContain('#dashboards:name=udpwatch');
  });
});

describe('cdk-nag', () => {
  it('reports no unacknowledged AwsSolutions finding', () => {
    const report = new AwsSolutionsChecks().validateScope(built.app);
    expect(
      report.violations.map((v) => `${v.ruleName} at ${v.violatingResources[0]?.constructPath}`),
    ).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('leaves no error or warning annotation on the stack', () => {
    const annotations = Annotations.fromStack(built.stack);
    expect(annotations.findError('*', Match.anyValue())).toEqual([]);
    expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
  });

  it('gives every acknowledged rule a written reason', () => {
    const acknowledged = Object.values(resources).flatMap(
      (r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [],
    );
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const rule of acknowledged) {
      expect(rule.id).toMatch(/^AwsSolutions-/);
      expect(rule.reason.length, rule.id).toBeGreaterThan(40);
    }
  });
});

describe('agent loss alarm', () => {
  it("fires while the reporting agents' losses grow (DIFF of AgentsDropped), not on their level", () => {
    const [, alarm] = Object.entries(ofType('AWS::CloudWatch::Alarm')).find(([id]) =>
      id.includes('AgentLoss'),
    )!;
    expect(alarm.Properties).toMatchObject({
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    const queries: {
      Id: string;
      ReturnData?: boolean;
      Expression?: string;
      MetricStat?: { Metric: { MetricName: string; Namespace: string } };
    }[] = alarm.Properties.Metrics;
    expect(queries.find((q) => q.ReturnData !== false)?.Expression).toBe('DIFF(dropped)');
    const source = queries.find((q) => q.Id === 'dropped')!;
    expect(source.MetricStat?.Metric.MetricName).toBe(METRICS.agentsDropped);
    expect(source.MetricStat?.Metric.Namespace).toBe(RESOURCE_NAMES.metricsNamespace);
    expect(alarm.Properties.AlarmActions).toHaveLength(1);
  });
});
