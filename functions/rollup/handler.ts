/**
 * Entry point of the roll-up function: every few minutes, builds the hourly
 * roll-ups the summarize function marked as due, until shortly before its
 * timeout, and publishes how many are still pending (EMF).
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
import { type RollupResult, rollUpDue } from './rollup.js';

/**
 * Share of the run's time in which it starts new shards; the rest is
 * reserve for the shard under way (5 of the deployed 15 minutes). One shard
 * of the busiest service-hour takes well under that at the fleet sizes the
 * scale model covers (bench scale-model, roll-up figures).
 */
export const ROLLUP_START_SHARE = 2 / 3;

/** Builds the wrapped roll-up handler for a configuration (tests may pin the clock). */
export function createRollupHandler(config: FunctionConfig, options: { now?: () => number } = {}) {
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
  const now = options.now ?? Date.now;
  return middy<unknown, RollupResult>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .handler(async (_event, context: Context) => {
      const stopAt = now() + context.getRemainingTimeInMillis() * ROLLUP_START_SHARE;
      const result = await rollUpDue(
        reader,
        { retentionHours: config.retentionHours },
        () => now() >= stopAt,
      );
      metrics.addMetric(METRICS.rollupsPending, MetricUnit.Count, result.pending);
      if (result.badMarks > 0) {
        logger.warn('roll-up marks with a bad key were deleted', { badMarks: result.badMarks });
      }
      logger.info('roll-ups built', {
        completed: result.completed.length,
        shardsBuilt: result.shardsBuilt,
        partsWritten: result.partsWritten,
        pending: result.pending,
        queries: result.cost.queries,
        readUnits: result.cost.readUnits,
      });
      return result;
    });
}

let built: ReturnType<typeof createRollupHandler> | undefined;

/** The Lambda entry point: built from the environment on first use, so importing this module has no side effects. */
export const handler = (
  event: Parameters<ReturnType<typeof createRollupHandler>>[0],
  context: Context,
): ReturnType<ReturnType<typeof createRollupHandler>> => {
  built ??= createRollupHandler(configFromEnv());
  return built(event, context);
};
