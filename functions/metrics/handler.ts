/** Entry point of the metrics function: every minute, active client counts -> CloudWatch (EMF). */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { METRICS, RESOURCE_NAMES } from '../../contract/resources.js';
import { configFromEnv, type FunctionConfig } from '../store/config.js';
import { createDocumentClient } from '../store/document-client.js';
import { type ActiveCounts, countAll } from './active-counts.js';

/** Builds the wrapped metrics handler for a configuration (tests pass their own and may pin the clock). */
export function createMetricsHandler(config: FunctionConfig, options: { now?: () => number } = {}) {
  const logger = new Logger({ serviceName: RESOURCE_NAMES.powertoolsService });
  const metrics = new Metrics({
    namespace: RESOURCE_NAMES.metricsNamespace,
    serviceName: RESOURCE_NAMES.powertoolsService,
  });
  const reader = {
    doc: createDocumentClient({ endpoint: config.dynamodbEndpoint }),
    table: config.table,
  };
  return middy<unknown, ActiveCounts>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .handler(async () => {
      const now = (options.now ?? Date.now)();
      const counts = await countAll(reader, now, config.activeWindowSeconds);
      for (const s of counts.services) {
        // One EMF document per service, carrying its own Service dimension.
        const perService = new Metrics({
          namespace: RESOURCE_NAMES.metricsNamespace,
          serviceName: RESOURCE_NAMES.powertoolsService,
          defaultDimensions: { [METRICS.serviceDimension]: s.service },
        });
        perService.addMetric(METRICS.activeClients, MetricUnit.Count, s.activeClients);
        perService.addMetric(METRICS.activeClientIps, MetricUnit.Count, s.activeClientIps);
        perService.publishStoredMetrics();
      }
      metrics.addMetric(METRICS.agentsReporting, MetricUnit.Count, counts.agentsReporting);
      logger.info('active clients counted', {
        services: counts.services.length,
        agentsReporting: counts.agentsReporting,
      });
      return counts;
    });
}

let built: ReturnType<typeof createMetricsHandler> | undefined;

/** The Lambda entry point: built from the environment on first use, so importing this module has no side effects. */
export const handler = (
  event: Parameters<ReturnType<typeof createMetricsHandler>>[0],
  context: Context,
): ReturnType<ReturnType<typeof createMetricsHandler>> => {
  built ??= createMetricsHandler(configFromEnv());
  return built(event, context);
};
