/** Entry point of the cursor key rotation function: Secrets Manager invokes it once per rotation step. */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import middy from '@middy/core';
import type { SecretsManagerRotationEvent } from 'aws-lambda';
import { RESOURCE_NAMES } from '../../contract/resources.js';
import { rotateStep } from './rotation.js';

const logger = new Logger({ serviceName: RESOURCE_NAMES.powertoolsService });
const client = new SecretsManagerClient({});

/** The Lambda entry point. */
export const handler = middy<SecretsManagerRotationEvent, void>()
  .use(injectLambdaContext(logger))
  .handler((event) => rotateStep(event, { client, log: (m) => logger.info(m) }));
