/**
 * One CloudWatch dashboard: client counts per service, agents reporting,
 * ingestion lag, bad input and block conflicts, errors and the API, with the
 * state of every alarm on top.
 */
import { Aws, Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  type Alarm,
  AlarmStatusWidget,
  Dashboard,
  GraphWidget,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRICS } from '../contract/resources.js';
import { agentsReportingMetric, allSeries } from './client-metrics.js';

/** Settings of the dashboard. */
export interface OperationsDashboardProps {
  dashboardName: string;
  aggregate: IFunction;
  query: IFunction;
  summarize: IFunction;
  rollup: IFunction;
  onFailureQueue: IQueue;
  api: HttpApi;
  alarms: Alarm[];
}

const FIVE_MINUTES = Duration.minutes(5);

/** The udpwatch dashboard and its console address. */
export class OperationsDashboard extends Construct {
  readonly dashboard: Dashboard;
  /** Console address of the dashboard (region resolved at deploy time). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const graph = (title: string, left: IMetric[], width = 12) =>
      new GraphWidget({ title, left, width, height: 6 });
    const errors = (fn: IFunction, name: string) => [
      fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum', label: `${name} errors` }),
      fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum', label: `${name} throttles` }),
    ];

    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new AlarmStatusWidget({ title: 'Alarms', alarms: props.alarms, width: 24, height: 4 }),
    );
    this.dashboard.addWidgets(
      graph('Active client endpoints per service', [
        allSeries(METRICS.activeClients, 'Maximum', 'endpoints'),
      ]),
      graph('Active client IPs per service', [
        allSeries(METRICS.activeClientIps, 'Maximum', 'IPs'),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Agents reporting', [agentsReportingMetric().with({ label: 'agents' })], 8),
      graph(
        'Ingestion lag (aggregator iterator age, ms)',
        [
          props.aggregate.metric('IteratorAge', {
            statistic: 'Maximum',
            period: Duration.minutes(1),
            label: 'iterator age',
          }),
        ],
        8,
      ),
      graph(
        'Bad input skipped, conflicting blocks',
        [
          allSeries(METRICS.badLines, 'Sum', 'bad lines'),
          allSeries(METRICS.badRecords, 'Sum', 'bad records'),
          allSeries(METRICS.blockConflicts, 'Sum', 'block conflicts'),
          allSeries(METRICS.badBlockParts, 'Sum', 'undecodable stored parts'),
        ],
        8,
      ),
    );
    this.dashboard.addWidgets(
      graph(
        'Function errors and throttles',
        [
          ...errors(props.aggregate, 'aggregate'),
          ...errors(props.query, 'query'),
          ...errors(props.summarize, 'summarize'),
          ...errors(props.rollup, 'rollup'),
        ],
        8,
      ),
      graph(
        'Batches given up on (on-failure queue)',
        [
          props.onFailureQueue.metricApproximateNumberOfMessagesVisible({
            period: FIVE_MINUTES,
            label: 'messages',
          }),
        ],
        8,
      ),
      graph(
        'Query API',
        [
          props.api.metricCount({ period: FIVE_MINUTES, label: 'requests' }),
          props.api.metricClientError({ period: FIVE_MINUTES, label: '4xx' }),
          props.api.metricServerError({ period: FIVE_MINUTES, label: '5xx' }),
        ],
        8,
      ),
    );
    this.url = `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards:name=${props.dashboardName}`;
  }
}
