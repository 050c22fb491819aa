// biome-ignore-all lint/suspicious/noExplicitAny: synthesized CloudFormation is untyped JSON
/**
 * A non-production deployment configured the way `cdk -c` passes context
 * (all strings): capacity, names, removal, alarm settings follow it. Bundling
 * is skipped here (the main stack test bundles for real).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGGREGATE_EVENT_SOURCE,
  METRICS,
  RESOURCE_NAMES,
  ROLLUP_SCHEDULE_MINUTES,
  TABLE,
} from '../../../contract/resources.js';
import { type BuiltApp, buildApp } from '../../../infra/app.js';
import { ConfigError } from '../../../infra/config.js';

let built: BuiltApp;
let resources: Record<string, any>;
let outputs: Record<string, any>;
let outdir: string;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'udpwatch-infra-'));
  built = buildApp(
    {
      'aws:cdk:bundling-stacks': [],
      stackName: 'UdpwatchStaging',
      namePrefix: 'staging-',
      production: 'false',
      shardCount: '4',
      tableMode: 'on-demand',
      streamRetentionHours: '48',
      serviceAlarms: '{"dns":{"max":100}}',
      alarmEvaluationPeriods: '10',
      alarmDatapointsToAlarm: '3',
      alarmTreatMissingData: 'missing',
      minAgentsReporting: '0',
      logLevel: 'DEBUG',
      logRetentionDays: '7',
    },
    outdir,
  );
  const json = Template.fromStack(built.stack).toJSON();
  resources = json.Resources;
  outputs = json.Outputs;
}, 120_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const ofType = (type: string) => Object.values(resources).filter((r) => r.Type === type);

describe('a staging deployment from -c strings', () => {
  it('keeps the contract event source and the one-at-a-time summarizer and roll-up whatever the context', () => {
    const [mapping] = ofType('AWS::Lambda::EventSourceMapping');
    expect(mapping.Properties).toMatchObject({
      MaximumBatchingWindowInSeconds: AGGREGATE_EVENT_SOURCE.maxBatchingWindowSeconds,
      BisectBatchOnFunctionError: true,
    });
    const reserved = ofType('AWS::Lambda::Function')
      .map((f) => f.Properties.ReservedConcurrentExecutions)
      .filter((n) => n !== undefined);
    expect(reserved).toEqual([1, 1]);
    expect(
      ofType('AWS::Events::Rule')
        .map((r) => r.Properties.ScheduleExpression)
        .sort(),
    ).toEqual(['rate(1 minute)', `rate(${ROLLUP_SCHEDULE_MINUTES} minutes)`]);
  });

  it('has no secondary index outside production either', () => {
    const [table] = ofType('AWS::DynamoDB::Table');
    expect(table.Properties.GlobalSecondaryIndexes).toBeUndefined();
    expect(table.Properties.TimeToLiveSpecification).toEqual({
      AttributeName: TABLE.ttlAttribute,
      Enabled: true,
    });
  });

  it('makes an on-demand table with tableMode=on-demand, with no auto scaling', () => {
    const [table] = ofType('AWS::DynamoDB::Table');
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.ProvisionedThroughput).toBeUndefined();
    expect(ofType('AWS::ApplicationAutoScaling::ScalableTarget')).toEqual([]);
  });

  it('provisions the stream with the given shards and retention', () => {
    const [stream] = ofType('AWS::Kinesis::Stream');
    expect(stream.Properties).toMatchObject({
      Name: `staging-${RESOURCE_NAMES.stream}`,
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      ShardCount: 4,
      RetentionPeriodHours: 48,
    });
  });

  it('prefixes every physical name and export', () => {
    expect(ofType('AWS::DynamoDB::Table')[0].Properties.TableName).toBe(
      `staging-${RESOURCE_NAMES.table}`,
    );
    expect(ofType('AWS::SQS::Queue')[0].Properties.QueueName).toBe(
      `staging-${RESOURCE_NAMES.onFailureQueue}`,
    );
    expect(ofType('AWS::SNS::Topic')[0].Properties.TopicName).toBe(
      `staging-${RESOURCE_NAMES.alarmTopic}`,
    );
    expect(ofType('AWS::CloudWatch::Dashboard')[0].Properties.DashboardName).toBe(
      'staging-udpwatch',
    );
    expect(outputs.AgentPolicyArn.Export.Name).toBe('UdpwatchStaging-AgentPolicyArn');
    expect(built.stack.stackName).toBe('UdpwatchStaging');
  });

  it('lets the table and stream go with the stack outside production', () => {
    const [table] = ofType('AWS::DynamoDB::Table');
    expect(table.Properties.DeletionProtectionEnabled).toBe(false);
    expect(table.DeletionPolicy).toBe('Delete');
    expect(ofType('AWS::Kinesis::Stream')[0].DeletionPolicy).toBe('Delete');
  });

  it('applies the alarm settings and leaves out what was not asked for', () => {
    const alarms = ofType('AWS::CloudWatch::Alarm').map((a) => a.Properties);
    const client = alarms.filter((a) => a.MetricName === METRICS.activeClients);
    expect(client).toHaveLength(1);
    expect(client[0]).toMatchObject({
      Threshold: 100,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 10,
      DatapointsToAlarm: 3,
      TreatMissingData: 'missing',
    });
    expect(alarms.some((a) => a.MetricName === METRICS.activeClientIps)).toBe(false);
    expect(alarms.some((a) => a.MetricName === METRICS.agentsReporting)).toBe(false);
    expect(ofType('AWS::SNS::Subscription')).toEqual([]);
    expect(ofType('AWS::IAM::InstanceProfile')).toEqual([]);
    expect(outputs.AgentInstanceProfileName).toBeUndefined();
  });

  it('passes log level and retention to the functions', () => {
    for (const fn of ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.Environment.Variables.POWERTOOLS_LOG_LEVEL).toBe('DEBUG');
      const logGroup = resources[fn.Properties.LoggingConfig.LogGroup.Ref];
      expect(logGroup.Properties.RetentionInDays).toBe(7);
    }
  });

  it('still passes cdk-nag', () => {
    expect(new AwsSolutionsChecks().validateScope(built.app).violations).toEqual([]);
  });
});

describe('buildApp with bad context', () => {
  it('fails before building anything, naming the key', () => {
    expect(() => buildApp({ shardCount: 'many' })).toThrow(ConfigError);
    expect(() => buildApp({ shardCount: 'many' })).toThrow(/context "shardCount"/);
  });

  it('fails on shards for an on-demand stream', () => {
    expect(() => buildApp({ streamMode: 'on-demand', shardCount: '4' })).toThrow(
      /context "shardCount": 4 shards given with streamMode=on-demand/,
    );
  });

  it('fails on auto scaling ceilings for an on-demand table', () => {
    expect(() => buildApp({ tableMode: 'on-demand', tableMaxWriteCapacity: '100' })).toThrow(
      /context "tableMaxWriteCapacity": 100 given with tableMode=on-demand/,
    );
  });

  it('fails on the removed batchingWindowSeconds key given with -c', () => {
    expect(() => buildApp({ batchingWindowSeconds: '5' })).toThrow(
      /context "batchingWindowSeconds": removed/,
    );
  });
});
