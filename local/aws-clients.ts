/**
 * AWS SDK v3 clients pointed at an endpoint override (the local emulators) or
 * at the real services when no endpoint is given.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';

/** Credentials the emulators accept; they check the signature's shape, not the secret. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;
export const LOCAL_REGION = 'us-east-1';

export interface ClientOptions {
  /** e.g. http://127.0.0.1:4567; omit for the real service. */
  endpoint?: string;
  region?: string;
  /** Retries the SDK makes itself; tests that inject faults set 1. */
  maxAttempts?: number;
  requestTimeoutMs?: number;
}

/** Settings both clients share: local credentials and region with an endpoint, an HTTP/1.1 handler. */
function clientConfig(options: ClientOptions) {
  const local = options.endpoint !== undefined;
  return {
    region: options.region ?? (local ? LOCAL_REGION : undefined),
    endpoint: options.endpoint,
    maxAttempts: options.maxAttempts,
    ...(local ? { credentials: LOCAL_CREDENTIALS } : {}),
    // The default HTTP/2 handler of the Kinesis client fails against kinesalite.
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 2_000,
      requestTimeout: options.requestTimeoutMs ?? 10_000,
    }),
  };
}

/** A Kinesis client; with an endpoint it speaks HTTP/1.1, which kinesalite needs. */
export function kinesisClient(options: ClientOptions = {}): KinesisClient {
  return new KinesisClient(clientConfig(options));
}

/** A DynamoDB client, local when an endpoint is given. */
export function dynamodbClient(options: ClientOptions = {}): DynamoDBClient {
  return new DynamoDBClient(clientConfig(options));
}
