/** Entry point of the aggregate function: Kinesis event source -> DynamoDB. */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { RESOURCE_NAMES } from '../../contract/resources.js';
import { configFromEnv, type FunctionConfig } from '../store/config.js';
import { createDocumentClient } from '../store/document-client.js';
import { aggregateBatch, WriteFailures } from './aggregate.js';
import { ServiceRefresh } from './service-refresh.js';

/** Builds the wrapped aggregate handler for a configuration (tests pass their own and may pin the clock). */
export function createAggregateHandler(
  config: FunctionConfig,
  options: { maxAttempts?: number; now?: () => number } = {},
) {
  const logger = new Logger({ serviceName: RESOURCE_NAMES.powertoolsService });
  const metrics = new Metrics({
    namespace: RESOURCE_NAMES.metricsNamespace,
    serviceName: RESOURCE_NAMES.powertoolsService,
  });
  const doc = createDocumentClient({
    endpoint: config.dynamodbEndpoint,
    maxAttempts: options.maxAttempts,
  });
  const writer = { doc, table: config.table, retentionHours: config.retentionHours };
  const serviceRefresh = new ServiceRefresh();
  const writeFailures = new WriteFailures();
  return middy<KinesisStreamEvent, KinesisStreamBatchResponse>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .handler((event) =>
      aggregateBatch(event, {
        writer,
        logger,
        metrics,
        serviceRefresh,
        writeFailures,
        now: options.now,
      }),
    );
}

let built: ReturnType<typeof createAggregateHandler> | undefined;

/** The Lambda entry point: built from the environment on first use, so importing this module has no side effects. */
export const handler = (
  event: Parameters<ReturnType<typeof createAggregateHandler>>[0],
  context: Context,
): ReturnType<ReturnType<typeof createAggregateHandler>> => {
  built ??= createAggregateHandler(configFromEnv());
  return built(event, context);
};
