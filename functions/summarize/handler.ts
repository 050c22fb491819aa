/**
 * Entry point of the summarize function: every minute, per-minute summaries,
 * roll-up marks and late marks -> DynamoDB; active counts -> CloudWatch (EMF).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { METRICS, RESOURCE_NAMES } from '../../contract/resources.js';
import { configFromEnv, type FunctionConfig } from '../store/config.js';
import { createDocumentClient } from '../store/document-client.js';
import { MinuteCache } from './minute-cache.js';
import { type SummarizeResult, summarizeAll } from './summarize.js';

/**
 * Builds the wrapped summarize handler for a configuration (tests pass their
 * own, may pin the clock and may size the minute cache). The handler keeps
 * its minute cache across invocations: one per warm Lambda instance.
 */
export function createSummarizeHandler(
  config: FunctionConfig,
  options: { now?: () => number; cache?: MinuteCache } = {},
) {
  const logger = new Logger({ serviceName: RESOURCE_NAMES.powertoolsService });
  const metrics = new Metrics({
    namespace: RESOURCE_NAMES.metricsNamespace,
    serviceName: RESOURCE_NAMES.powertoolsService,
  });
  const reader = {
    doc: createDocumentClient({ endpoint: config.dynamodbEndpoint }),
    table: config.table,
    logger,
  };
  const settings = {
    activeWindowSeconds: config.activeWindowSeconds,
    retentionHours: config.retentionHours,
  };
  const cache = options.cache ?? new MinuteCache();
  cache.onFirstOverCap = (held, wanted) =>
    logger.warn('minute cache full: minutes past the cap are read again each run', {
      endpointsHeld: held,
      endpointsOffered: wanted,
      maxEndpoints: cache.maxEndpoints,
    });
  return middy<unknown, SummarizeResult>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .handler(async () => {
      const now = (options.now ?? Date.now)();
      const result = await summarizeAll(reader, settings, now, cache);
      for (const s of result.services) {
        // One EMF document per service, carrying its own Service dimension. A
        // service without a summary yet (never active) reports zero.
        const perService = new Metrics({
          namespace: RESOURCE_NAMES.metricsNamespace,
          serviceName: RESOURCE_NAMES.powertoolsService,
          defaultDimensions: { [METRICS.serviceDimension]: s.service },
        });
        const latest = s.latest;
        perService.addMetric(METRICS.activeClients, MetricUnit.Count, latest?.activeClients ?? 0);
        perService.addMetric(
          METRICS.activeClientIps,
          MetricUnit.Count,
          latest?.activeClientIps ?? 0,
        );
        perService.addMetric(METRICS.oneWayClients, MetricUnit.Count, latest?.oneWay ?? 0);
        perService.addMetric(METRICS.socketDrops, MetricUnit.Count, latest?.socket?.drops ?? 0);
        perService.publishStoredMetrics();
      }
      metrics.addMetric(METRICS.agentsReporting, MetricUnit.Count, result.agentsReporting);
      metrics.addMetric(METRICS.agentsDropped, MetricUnit.Count, result.agentsDropped);
      metrics.addMetric(METRICS.badBlockParts, MetricUnit.Count, result.cost.badParts);
      logger.info('services summarized', {
        minute: result.minute,
        services: result.services.length,
        summaries: result.services.reduce((n, s) => n + s.summarized.length, 0),
        rollupsDue: result.services.reduce((n, s) => n + s.rollupsDue.length, 0),
        lateMarksHandled: result.lateMarksHandled,
        agentsReporting: result.agentsReporting,
        agentsDropped: result.agentsDropped,
        queries: result.cost.queries,
        readUnits: result.cost.readUnits,
        minutesRead: result.minutes.read,
        minutesCached: result.minutes.cached,
        cacheEndpoints: cache.endpointsHeld,
        cacheOverCap: cache.stats.overCap,
      });
      return result;
    });
}

let built: ReturnType<typeof createSummarizeHandler> | undefined;

/** The Lambda entry point: built from the environment on first use, so importing this module has no side effects. */
export const handler = (
  event: Parameters<ReturnType<typeof createSummarizeHandler>>[0],
  context: Context,
): ReturnType<ReturnType<typeof createSummarizeHandler>> => {
  built ??= createSummarizeHandler(configFromEnv());
  return built(event, context);
};
