/**
 * The CloudWatch metrics the functions publish (contract METRICS): client
 * counts from the summarize function, skipped input and block conflicts from
 * the aggregator, as alarms and the dashboard address them. One place decides
 * their namespace, dimensions and period.
 */
import { Duration } from 'aws-cdk-lib';
import { MathExpression, Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { METRICS, RESOURCE_NAMES } from '../contract/resources.js';

/**
 * Powertools Metrics adds a `service` dimension (its service name) to every
 * EMF document it writes, and CloudWatch matches an alarm only to the exact
 * dimension set: so the alarms carry it too.
 */
export const POWERTOOLS_DIMENSIONS = { service: RESOURCE_NAMES.powertoolsService } as const;

/** The summarize function publishes once a minute; client alarms look at one-minute periods. */
export const METRIC_PERIOD = Duration.minutes(1);

/** A per-service client count: METRICS.activeClients or METRICS.activeClientIps. */
export type ClientCountMetricName = typeof METRICS.activeClients | typeof METRICS.activeClientIps;

/** One service's client count metric, as an alarm can watch it. */
export function clientCountMetric(
  metricName: ClientCountMetricName,
  service: string,
  statistic: 'Minimum' | 'Maximum',
): Metric {
  return new Metric({
    namespace: RESOURCE_NAMES.metricsNamespace,
    metricName,
    dimensionsMap: { ...POWERTOOLS_DIMENSIONS, [METRICS.serviceDimension]: service },
    statistic,
    period: METRIC_PERIOD,
  });
}

/** A count the aggregator publishes per batch, without a Service dimension. */
export type PipelineCountMetricName = typeof METRICS.badRecords | typeof METRICS.blockConflicts;

/** The sum of an aggregator count over `period`, as an alarm can watch it. */
export function pipelineCountMetric(metricName: PipelineCountMetricName, period: Duration): Metric {
  return new Metric({
    namespace: RESOURCE_NAMES.metricsNamespace,
    metricName,
    dimensionsMap: POWERTOOLS_DIMENSIONS,
    statistic: 'Sum',
    period,
  });
}

/** The fleet-wide number of agents that sent a heartbeat in the active window. */
export function agentsReportingMetric(): Metric {
  return new Metric({
    namespace: RESOURCE_NAMES.metricsNamespace,
    metricName: METRICS.agentsReporting,
    dimensionsMap: POWERTOOLS_DIMENSIONS,
    statistic: 'Minimum',
    period: METRIC_PERIOD,
  });
}

/** What the stored agents lost, each a total across its restarts, summed, as the summarize function publishes it. */
export function agentsDroppedMetric(): Metric {
  return new Metric({
    namespace: RESOURCE_NAMES.metricsNamespace,
    metricName: METRICS.agentsDropped,
    dimensionsMap: POWERTOOLS_DIMENSIONS,
    statistic: 'Maximum',
    period: METRIC_PERIOD,
  });
}

/**
 * Every series of a metric in the udpwatch namespace, whatever its dimensions
 * (one line per service on a dashboard, including services without alarms).
 */
export function allSeries(metricName: string, statistic: string, label: string): MathExpression {
  return new MathExpression({
    expression: `SEARCH('Namespace="${RESOURCE_NAMES.metricsNamespace}" MetricName="${metricName}"', '${statistic}', ${METRIC_PERIOD.toSeconds()})`,
    label,
    period: METRIC_PERIOD,
    usingMetrics: {},
  });
}
