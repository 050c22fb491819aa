/** Entry point of the aggregate function: Kinesis event source -> DynamoDB. */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { RESOURCE_NAMES } from '../../contract/resources.js';
import { type FunctionConfig, configFromEnv } from '../store/config.js';
import { createDocumentClient } from '../store/document-client.js';
import { aggregateBatch } from './aggregate.js';

/** Builds the wrapped aggregate handler for a configuration (tests pass their own). */
export function createAggregateHandler(config: FunctionConfig, options: { maxAttempts?: number } = {}) {
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
  return middy<KinesisStreamEvent, KinesisStreamBatchResponse>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .handler((event) => aggregateBatch(event, { writer, logger, metrics }));
}

export const handler = createAggregateHandler(configFromEnv());
