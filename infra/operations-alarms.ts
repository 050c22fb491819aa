/**
 * Alarms on the pipeline itself: the aggregator falling behind the stream,
 * failing or throttled, batches given up on, records it could not decode,
 * blocks that conflict with a stored block under the same key, the API
 * failing, the summarize function failing (client alarms would go blind), the
 * roll-up function failing, agents losing observations, and too few agents
 * reporting.
 */
import { Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  MathExpression,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRICS, operationsAlarmName } from '../contract/resources.js';
import {
  agentsDroppedMetric,
  agentsReportingMetric,
  pipelineCountMetric,
} from './client-metrics.js';

/** Window of the count-based alarms (errors, throttles, 5xx). */
const COUNT_PERIOD = Duration.minutes(5);

/** Settings of the operations alarms. */
export interface OperationsAlarmsProps {
  alarmNamePrefix: string;
  aggregate: IFunction;
  query: IFunction;
  summarize: IFunction;
  rollup: IFunction;
  onFailureQueue: IQueue;
  api: HttpApi;
  topic: ITopic;
  evaluationPeriods: number;
  iteratorAgeSeconds: number;
  api5xxThreshold: number;
  /** Zero turns the agents alarm off. */
  minAgentsReporting: number;
}

/** The operations alarms, keyed by what they watch. */
export class OperationsAlarms extends Construct {
  readonly alarms: Record<string, Alarm> = {};
  private readonly action: SnsAction;
  private readonly alarmNamePrefix: string;

  constructor(scope: Construct, id: string, props: OperationsAlarmsProps) {
    super(scope, id);
    this.action = new SnsAction(props.topic);
    this.alarmNamePrefix = props.alarmNamePrefix;
    const atLeastOne = {
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    };

    this.add('AggregateIteratorAge', 'The aggregator lags behind the stream', {
      metric: props.aggregate.metric('IteratorAge', {
        statistic: 'Maximum',
        period: Duration.minutes(1),
      }),
      threshold: props.iteratorAgeSeconds * 1000,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: props.evaluationPeriods,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.add('AggregateErrors', 'The aggregate function failed whole invocations', {
      ...atLeastOne,
      metric: props.aggregate.metricErrors({ period: COUNT_PERIOD, statistic: 'Sum' }),
    });
    this.add('AggregateThrottles', 'The aggregate function was throttled', {
      ...atLeastOne,
      metric: props.aggregate.metricThrottles({ period: COUNT_PERIOD, statistic: 'Sum' }),
    });
    this.add('OnFailureQueueDepth', 'Batches the aggregator gave up on are waiting', {
      ...atLeastOne,
      metric: props.onFailureQueue.metricApproximateNumberOfMessagesVisible({
        period: COUNT_PERIOD,
        statistic: 'Maximum',
      }),
    });
    this.add('BadRecords', 'Kinesis records the aggregator could not decode were skipped', {
      ...atLeastOne,
      metric: pipelineCountMetric(METRICS.badRecords, COUNT_PERIOD),
    });
    // Same key, different content: an agent reused a sequence number (lost
    // state, a cloned host) or two agents share an id. Both copies are kept,
    // but the queries read only the first: someone has to look.
    this.add('BlockConflicts', 'A block differs from the one stored under its key', {
      metric: pipelineCountMetric(METRICS.blockConflicts, COUNT_PERIOD),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.add('Api5xx', 'The query API answers with server errors', {
      metric: props.api.metricServerError({ period: COUNT_PERIOD, statistic: 'Sum' }),
      threshold: props.api5xxThreshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.add('QueryErrors', 'The query function failed', {
      ...atLeastOne,
      metric: props.query.metricErrors({ period: COUNT_PERIOD, statistic: 'Sum' }),
    });
    this.add('SummarizeErrors', 'The summarize function failed; client alarms go blind', {
      ...atLeastOne,
      metric: props.summarize.metricErrors({ period: COUNT_PERIOD, statistic: 'Sum' }),
    });
    this.add('RollupErrors', 'The roll-up function failed; long windows read minutes instead', {
      ...atLeastOne,
      metric: props.rollup.metricErrors({ period: COUNT_PERIOD, statistic: 'Sum' }),
    });
    // DIFF, not the level: the alarm fires while losses grow and clears once
    // they stop. Each agent's counter is a total across its restarts (kept in
    // its checkpoint), so a restart shows neither a false drop nor a false jump.
    this.add('AgentLoss', 'Agents are losing observations (spool full, memory or hook bounds)', {
      metric: new MathExpression({
        expression: 'DIFF(dropped)',
        usingMetrics: { dropped: agentsDroppedMetric() },
        label: 'observations lost by agents since the previous minute',
        period: Duration.minutes(1),
      }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    if (props.minAgentsReporting > 0) {
      this.add('TooFewAgents', `Fewer than ${props.minAgentsReporting} agents report`, {
        metric: agentsReportingMetric(),
        threshold: props.minAgentsReporting,
        comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: props.evaluationPeriods,
        // No data point means the summarize function saw no agent at all (or did not run).
        treatMissingData: TreatMissingData.BREACHING,
      });
    }
  }

  private add(
    name: string,
    description: string,
    settings: {
      metric: IMetric;
      threshold: number;
      comparisonOperator: ComparisonOperator;
      evaluationPeriods: number;
      treatMissingData: TreatMissingData;
    },
  ): void {
    const alarm = new Alarm(this, name, {
      alarmName: operationsAlarmName(this.alarmNamePrefix, name),
      alarmDescription: `udpwatch: ${description}`,
      ...settings,
    });
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    this.alarms[name] = alarm;
  }
}
