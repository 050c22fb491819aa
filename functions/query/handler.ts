/** Entry point of the query function: API Gateway HTTP API (payload 2.0) -> DynamoDB reads. */
import { randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import middy from '@middy/core';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';
import { PROBLEM_CONTENT_TYPE } from '../../contract/api-schemas.js';
import { ENV, RESOURCE_NAMES } from '../../contract/resources.js';
import type { ReadCost } from '../store/block-reader.js';
import { configFromEnv, type FunctionConfig } from '../store/config.js';
import { createDocumentClient } from '../store/document-client.js';
import { type AlarmSource, noAlarms } from './alarm-source.js';
import { cloudWatchAlarms } from './cloudwatch-alarms.js';
import { CursorCodec, type CursorKeys } from './cursor.js';
import {
  type CursorKeyProvider,
  secretsManagerCursorKeys,
  staticCursorKeys,
} from './cursor-keys.js';
import { HttpProblem } from './problem.js';
import { handleRequest } from './query.js';

/** Where cursor keys come from: the given provider, the configured secret, key, or a random key. */
function cursorKeysFor(config: FunctionConfig, logger: Logger): CursorKeyProvider {
  if (config.cursorSecretId) {
    return secretsManagerCursorKeys({
      client: new SecretsManagerClient({}),
      secretId: config.cursorSecretId,
      warn: (message) => logger.warn(message),
    });
  }
  if (!config.cursorKey) {
    logger.warn(
      `neither ${ENV.cursorSecret} nor ${ENV.cursorKey} is set: cursors are signed with a random per-process key and stop working when this instance ends`,
    );
  }
  return staticCursorKeys({
    current: config.cursorKey ?? randomBytes(32).toString('base64url'),
    previous: [],
  });
}

/** Where alarm states come from: the stack's CloudWatch alarms when a prefix is configured. */
function alarmsFor(config: FunctionConfig): AlarmSource {
  if (!config.alarmPrefix) return noAlarms();
  return cloudWatchAlarms({ client: new CloudWatchClient({}), prefix: config.alarmPrefix });
}

/**
 * Builds the wrapped query handler for a configuration (tests pass their own
 * and may pin the clock; local mode passes its own cursor key provider and
 * alarm source).
 */
export function createQueryHandler(
  config: FunctionConfig,
  options: { now?: () => number; cursorKeys?: CursorKeyProvider; alarms?: AlarmSource } = {},
) {
  const logger = new Logger({ serviceName: RESOURCE_NAMES.powertoolsService });
  const cursorKeys = options.cursorKeys ?? cursorKeysFor(config, logger);
  const alarms = options.alarms ?? alarmsFor(config);
  const deps = {
    reader: {
      doc: createDocumentClient({ endpoint: config.dynamodbEndpoint }),
      table: config.table,
      logger,
    },
    activeWindowSeconds: config.activeWindowSeconds,
    alarms,
    logger,
    now: options.now,
    // Each answer's cost, so a deployment's logs show what its queries read.
    onCost: (path: string, cost: ReadCost) => logger.debug('answer cost', { path, ...cost }),
  };
  const codecOf = (keys: CursorKeys) => new CursorCodec(keys, { now: options.now });
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(injectLambdaContext(logger))
    .handler(async (event) => {
      let cursors: CursorCodec;
      try {
        cursors = codecOf(await cursorKeys.keys());
        // A cursor signed with a key this instance has not loaded yet (another
        // instance saw a rotation first): reload once, then decide.
        const cursor = event.queryStringParameters?.cursor;
        if (cursor && !cursors.knowsKeyOf(cursor)) {
          cursors = codecOf(await cursorKeys.keys({ refresh: true }));
        }
      } catch (err) {
        // No keys at all (cold start, Secrets Manager unreachable or denied).
        logger.error('cursor keys unavailable', { error: err as Error });
        const problem = new HttpProblem(
          503,
          'Service Unavailable',
          'the cursor keys cannot be read right now; retry later',
        );
        return {
          statusCode: 503,
          headers: { 'content-type': PROBLEM_CONTENT_TYPE, 'retry-after': '5' },
          body: JSON.stringify(problem.toBody()),
        };
      }
      return handleRequest(event, { ...deps, cursors });
    });
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
