/** Entry point of the query function: API Gateway HTTP API (payload 2.0) -> DynamoDB reads. */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';
import { ENV, RESOURCE_NAMES } from '../../contract/resources.js';
import type { ReadCost } from '../store/block-reader.js';
import { configFromEnv, type FunctionConfig } from '../store/config.js';
import { createDocumentClient } from '../store/document-client.js';
import { CursorCodec } from './cursor.js';
import { handleRequest } from './query.js';

/** Builds the wrapped query handler for a configuration (tests pass their own and may pin the clock). */
export function createQueryHandler(config: FunctionConfig, options: { now?: () => number } = {}) {
  const logger = new Logger({ serviceName: RESOURCE_NAMES.powertoolsService });
  if (!config.cursorKey) {
    logger.warn(
      `${ENV.cursorKey} is not set: cursors are signed with a random per-process key and stop working when this instance ends`,
    );
  }
  const deps = {
    reader: {
      doc: createDocumentClient({ endpoint: config.dynamodbEndpoint }),
      table: config.table,
      logger,
    },
    cursors: new CursorCodec(config.cursorKey),
    activeWindowSeconds: config.activeWindowSeconds,
    logger,
    now: options.now,
    // Each answer's cost, so a deployment's logs show what its queries read.
    onCost: (path: string, cost: ReadCost) => logger.debug('answer cost', { path, ...cost }),
  };
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(injectLambdaContext(logger))
    .handler((event) => handleRequest(event, deps));
}

let built: ReturnType<typeof createQueryHandler> | undefined;

/** The Lambda entry point: built from the environment on first use, so importing this module has no side effects. */
export const handler = (
  event: Parameters<ReturnType<typeof createQueryHandler>>[0],
  context: Context,
): ReturnType<ReturnType<typeof createQueryHandler>> => {
  built ??= createQueryHandler(configFromEnv());
  return built(event, context);
};
