/**
 * The whole udpwatch pipeline in one stack, in data-flow order:
 * agents -> stream -> aggregate -> table <- query API; table -> summarize -> alarms.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { AgentAccess } from './agent-access.js';
import { AlarmTopic } from './alarm-topic.js';
import { ClientAlarms } from './client-alarms.js';
import { ClientsTable } from './clients-table.js';
import { type Config, provisionedTableCapacity } from './config.js';
import { Functions } from './functions.js';
import { IngestStream } from './ingest-stream.js';
import { LogsKey, logGroupName } from './log-key.js';
import { OperationsAlarms } from './operations-alarms.js';
import { OperationsDashboard } from './operations-dashboard.js';
import { QueryApi } from './query-api.js';

/** Properties of the udpwatch stack: the validated context. */
export interface UdpwatchStackProps extends StackProps {
  config: Config;
}

/** Stream, table, functions, API, agent access, alarms and dashboard. */
export class UdpwatchStack extends Stack {
  constructor(scope: Construct, id: string, props: UdpwatchStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = config.namePrefix;
    const logRetention = config.logRetentionDays as RetentionDays;

    const ingest = new IngestStream(this, 'Ingest', {
      namePrefix: prefix,
      shardCount: config.shardCount,
      retentionHours: config.streamRetentionHours,
      production: config.production,
    });
    const agents = new AgentAccess(this, 'AgentAccess', {
      stream: ingest.stream,
      instanceProfile: config.agentInstanceProfile,
    });
    const clients = new ClientsTable(this, 'Clients', {
      namePrefix: prefix,
      production: config.production,
      provisioned: provisionedTableCapacity(config),
    });
    // Function and access logs hold client addresses: a key of their own.
    const logs = new LogsKey(this, 'Logs');
    const functions = new Functions(this, 'Functions', {
      namePrefix: prefix,
      logKey: logs.key,
      stream: ingest.stream,
      table: clients.table,
      logRetention,
      logLevel: config.logLevel,
      activeWindowSeconds: config.activeWindowSeconds,
      retentionHours: config.retentionHours,
      streamRetentionHours: config.streamRetentionHours,
    });
    const api = new QueryApi(this, 'QueryApi', {
      namePrefix: prefix,
      handler: functions.query.function,
      rateLimit: config.apiRateLimit,
      burstLimit: config.apiBurstLimit,
      logRetention,
      logKey: logs.key,
      logGroupName: logGroupName(this.stackName, 'api-access'),
    });

    const notifications = new AlarmTopic(this, 'Alarms', {
      namePrefix: prefix,
      email: config.alarmEmail,
    });
    const clientAlarms = new ClientAlarms(this, 'ClientAlarms', {
      alarmNamePrefix: this.stackName,
      services: config.serviceAlarms,
      evaluationPeriods: config.alarmEvaluationPeriods,
      datapointsToAlarm: config.alarmDatapointsToAlarm,
      treatMissingData: config.alarmTreatMissingData,
      topic: notifications.topic,
    });
    const operationsAlarms = new OperationsAlarms(this, 'OperationsAlarms', {
      alarmNamePrefix: this.stackName,
      aggregate: functions.aggregate.function,
      query: functions.query.function,
      summarize: functions.summarize.function,
      rollup: functions.rollup.function,
      onFailureQueue: functions.onFailureQueue,
      api: api.api,
      topic: notifications.topic,
      evaluationPeriods: config.alarmEvaluationPeriods,
      iteratorAgeSeconds: config.iteratorAgeAlarmSeconds,
      api5xxThreshold: config.api5xxAlarmThreshold,
      minAgentsReporting: config.minAgentsReporting,
    });
    const dashboard = new OperationsDashboard(this, 'Dashboard', {
      dashboardName: `${prefix}udpwatch`,
      aggregate: functions.aggregate.function,
      query: functions.query.function,
      summarize: functions.summarize.function,
      rollup: functions.rollup.function,
      onFailureQueue: functions.onFailureQueue,
      api: api.api,
      alarms: [...Object.values(operationsAlarms.alarms), ...clientAlarms.alarms],
    });

    const output = (id: string, value: string, description: string, exported = false) =>
      new CfnOutput(this, id, {
        value,
        description,
        exportName: exported ? `${this.stackName}-${id}` : undefined,
      });
    output('StreamName', ingest.stream.streamName, 'Kinesis stream the agents write to', true);
    output('StreamArn', ingest.stream.streamArn, 'ARN of the Kinesis stream', true);
    output('ApiUrl', api.stage.url, 'Base URL of the query API (IAM-signed requests)');
    output(
      'TableName',
      clients.table.tableName,
      'DynamoDB table of activity blocks, summaries, services and agents',
    );
    output(
      'AgentPolicyArn',
      agents.policy.managedPolicyArn,
      'Managed policy to attach to the roles the agents run as',
      true,
    );
    if (agents.instanceProfile) {
      output(
        'AgentInstanceProfileName',
        agents.instanceProfile.instanceProfileName,
        'EC2 instance profile for agent hosts',
      );
    }
    output(
      'OnFailureQueueUrl',
      functions.onFailureQueue.queueUrl,
      'Batches the aggregate gave up on: replay with udpwatch replay-failures --queue-url',
    );
    output('AlarmTopicArn', notifications.topic.topicArn, 'SNS topic the alarms notify');
    output('DashboardUrl', dashboard.url, 'CloudWatch dashboard');
  }
}
