/**
 * The DynamoDB document client the functions use. In Lambda it takes the
 * region and role credentials from the runtime; in local mode an endpoint
 * override points it at dynalite and credentials come from the standard
 * AWS_* environment variables the local runtime sets.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** Options of the document client. */
export interface DocumentClientOptions {
  endpoint?: string;
  /** Attempts the SDK makes itself, throttling retries included (default 3). */
  maxAttempts?: number;
}

/** Builds a document client that marshals JS Sets as string sets and drops undefined. */
export function createDocumentClient(options: DocumentClientOptions = {}): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    endpoint: options.endpoint,
    maxAttempts: options.maxAttempts,
    ...(options.endpoint && !process.env.AWS_REGION ? { region: 'us-east-1' } : {}),
  });
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
}
